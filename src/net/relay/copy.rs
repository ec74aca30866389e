//! Relaying where a side speaks TLS: the bytes must pass through this
//! process to be decrypted or encrypted, so each direction copies through
//! a buffer of 64 KiB, grown to 256 KiB once a read fills it (one TLS
//! record is at most 16 KiB; a bigger buffer takes several per wake-up).
//! Also how two `Conn`s a script holds are joined: plain ones go to
//! `splice` after their read-ahead bytes.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::pump::{self, End, Ends, Meter};
use super::splice;
use crate::error::{Error, Result};
use crate::net::tcp::Conn;
use crate::runtime::CancellationToken;

/// Bytes per read on a copied direction, at first.
const BUFFER: usize = 64 * 1024;

/// Bytes per read once a read filled [`BUFFER`]: a bulk stream. A 256 MiB
/// download through a TLS-terminating forward took a quarter of the
/// syscalls and about 17% less CPU than with 64 KiB reads; a direction
/// that never fills its buffer (an idle or chatty one) keeps 64 KiB, and
/// one whose read comes back under [`QUIET_READ`] goes back to it, so a
/// connection that went quiet after a download does not hold 256 KiB.
const BULK_BUFFER: usize = 256 * 1024;

/// A read this short means the bulk is over (the stream went quiet or
/// chatty).
const QUIET_READ: usize = 16 * 1024;

/// Copies `from` to `to` until `from` ends, then shuts `to`'s sending side
/// down (close_notify and FIN on TLS).
async fn copy<R, W>(mut from: R, to: &mut W, ends: &Ends, meter: &Meter) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut buf = vec![0u8; BUFFER];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // The other side may be gone already; its own direction says so.
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        ends.moved(meter, n);
        if n == buf.len() && buf.len() < BULK_BUFFER {
            buf.resize(BULK_BUFFER, 0);
        } else if n < QUIET_READ && buf.len() > BUFFER {
            buf.truncate(BUFFER);
            buf.shrink_to_fit();
        }
    }
}

/// Joins two open connections both ways until both directions end, a side
/// fails, nothing moves for `idle`, or `token` is cancelled. Both are
/// closed after (reset, when a side failed). Runs on the runtime.
pub async fn conns(
    a: &Conn,
    b: &Conn,
    ends: &Ends,
    idle: Option<std::time::Duration>,
    token: &CancellationToken,
) -> Result<End> {
    let end = {
        let mut io_a = a.lock_io().await?;
        let mut io_b = b.lock_io().await?;
        if a.tls().is_none() && b.tls().is_none() {
            // What a script's earlier recv_line() read ahead goes first.
            let early_a = io_a.take_pending();
            let early_b = io_b.take_pending();
            {
                let (_, to_b) = io_b.halves(b)?;
                to_b.write_all(&early_a)
                    .await
                    .map_err(|e| Error::io("relaying", None, e))?;
                ends.moved(&ends.a_to_b, early_a.len());
            }
            {
                let (_, to_a) = io_a.halves(a)?;
                to_a.write_all(&early_b)
                    .await
                    .map_err(|e| Error::io("relaying", None, e))?;
                ends.moved(&ends.b_to_a, early_b.len());
            }
            let dup = |c: &Conn| {
                c.with_socket(|fd| {
                    fd.try_clone_to_owned()
                        .and_then(splice::register)
                        .map_err(|e| Error::io("relaying", None, e))
                })
            };
            let (sa, sb) = (dup(a)?, dup(b)?);
            let end = pump::supervise(splice::join(&sa, &sb, ends), ends, idle, token).await;
            if let End::Failed(_) = end {
                pump::reset_on_close(sa.fd());
                pump::reset_on_close(sb.fd());
            }
            end
        } else {
            let (from_a, to_a) = io_a.halves(a)?;
            let (from_b, to_b) = io_b.halves(b)?;
            let work = pump::both(
                copy(from_a, to_b, ends, &ends.a_to_b),
                copy(from_b, to_a, ends, &ends.b_to_a),
            );
            pump::supervise(work, ends, idle, token).await
        }
    };
    match &end {
        End::Failed(_) => {
            a.abort();
            b.abort();
        }
        _ => {
            a.close();
            b.close();
        }
    }
    Ok(end)
}
