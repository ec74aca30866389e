//! `pcap: "file.pcap"`: the captured packets also go to a standard pcap
//! file that tcpdump (`tcpdump -r`) and Wireshark open.
//!
//! The packets are cooked (they start at the IP header), so the file's link
//! type is `RAW` (101): IPv4 and IPv6 packets without a link header. Each
//! record keeps the bytes the capture kept and the packet's real length.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

use crate::error::{Error, Result};

/// The header's snap length: the largest a packet may be, not what the
/// capture keeps (records say both). tcpdump's maximum, so that readers
/// which check a packet's real length against it (pcap-file does) accept
/// the largest loopback packets.
const MAX_SNAPLEN: u32 = 262_144;

/// An open pcap file being written.
pub struct PcapFile {
    path: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
}

impl PcapFile {
    /// Creates (or empties) `path` and writes the file header.
    pub fn create(path: &Path) -> Result<PcapFile> {
        let file = open_for_writing(path)?;
        let header = PcapHeader {
            snaplen: MAX_SNAPLEN,
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::MicroSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let writer = PcapWriter::with_header(BufWriter::new(file), header)
            .map_err(|e| write_error(path, e))?;
        Ok(PcapFile {
            path: path.to_path_buf(),
            writer,
        })
    }

    /// Appends one packet: the bytes kept, and how long it really was.
    pub fn write(&mut self, data: &[u8], wire_len: u32, time: SystemTime) -> Result<()> {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        self.writer
            .write_packet(&PcapPacket::new(since_epoch, wire_len, data))
            .map(drop)
            .map_err(|e| write_error(&self.path, e))
    }

    /// Flushes everything to disk.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let mut inner = self.writer.into_writer();
        inner
            .flush()
            .and_then(|()| inner.get_ref().sync_all())
            .map_err(|e| Error::io(format!("writing {}", path.display()), None, e))
    }
}

/// Opens `path` to write a capture into, as a part file is opened: never
/// through a symbolic link at its name (capture runs as root, and a link
/// planted there would have root overwrite its target), never blocking on a
/// FIFO, and only a regular file is emptied and written.
fn open_for_writing(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = crate::net::helpers::quoted(path);
    let refused = |what: &str| {
        Error::Permission(format!(
            "the pcap file {shown} {what}; refusing to write through it (name a regular file, or remove it first)"
        ))
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused("is a symbolic link"),
            Some(libc::EISDIR) => refused("is a folder"),
            Some(libc::ENXIO) => refused("is not a regular file"),
            _ => crate::net::helpers::file_error("creating", path, e),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| crate::net::helpers::file_error("creating", path, e))?;
    if !meta.is_file() {
        return Err(refused("is not a regular file"));
    }
    // O_NONBLOCK stays: a regular file's writes never block on it anyway.
    file.set_len(0)
        .map_err(|e| crate::net::helpers::file_error("emptying", path, e))?;
    Ok(file)
}

fn write_error(path: &Path, e: pcap_file::PcapError) -> Error {
    match e {
        pcap_file::PcapError::IoError(io) => {
            Error::io(format!("writing {}", path.display()), None, io)
        }
        other => Error::invalid(format!("writing {}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

    #[test]
    fn writes_a_file_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pcap");
        let mut file = PcapFile::create(&path).unwrap();
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_500_000);
        file.write(&[0x45, 0, 0, 20], 1500, t).unwrap();
        file.finish().unwrap();
        let mut reader = PcapReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.header().datalink, DataLink::RAW);
        let packet = reader.next_packet().unwrap().unwrap();
        assert_eq!(
            (
                packet.orig_len,
                packet.data.len(),
                packet.timestamp.as_micros()
            ),
            (1500, 4, 1_500_000)
        );
        assert!(reader.next_packet().is_none());
    }
}
