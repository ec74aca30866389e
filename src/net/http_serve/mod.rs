//! `http_serve`: an HTTP server for scripts (the server core arrives with
//! its skeleton; until then this holds folder serving's parts).

pub mod body;
pub mod files;
pub mod guard;
