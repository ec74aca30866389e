//! The size limits every layer shares: what one script value may hold, and
//! what a peer may make netsh keep in memory.

/// The longest string (and, through Rhai, blob) a script may build: 1 GiB.
pub const MAX_STRING_BYTES: usize = 1 << 30;

/// The most items in one array, blob or map.
pub const MAX_ARRAY_ITEMS: usize = 1 << 30;

/// The longest line or `recv_until` piece kept in memory: a peer that never
/// sends the delimiter must not be able to exhaust memory.
pub const MAX_LINE: usize = 1024 * 1024;
