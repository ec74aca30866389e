//! nginx on a loopback port with a generated config, for Range, ETag and
//! gzip the way a real server does them. Killed on Drop. When nginx is not
//! installed, [`Nginx::start`] says why the test skips and returns `None`.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

/// Where nginx lives (it is often in /usr/sbin, outside a user's PATH).
fn binary() -> Option<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain([
            PathBuf::from("/usr/sbin/nginx"),
            PathBuf::from("/usr/local/sbin/nginx"),
        ])
        .find(|p| p.is_file())
}

impl Nginx {
    /// Serves `root` over HTTP/1.1 on 127.0.0.1, with gzip for text/plain.
    pub fn start(test: &str, root: &Path) -> Option<Nginx> {
        let Some(nginx) = binary() else {
            super::skip(
                test,
                "nginx is not installed (.ci/run installs it with apt)",
            );
            return None;
        };
        for attempt in 0..20 {
            let dir = tempfile::tempdir().expect("a temp dir for nginx");
            let port = super::fixed_port(attempt);
            let conf = dir.path().join("nginx.conf");
            let tmp = dir.path().display().to_string();
            std::fs::write(
                &conf,
                format!(
                    "daemon off;\nmaster_process off;\nworker_processes 1;\npid {tmp}/nginx.pid;\n\
                     error_log {tmp}/error.log;\nevents {{ worker_connections 64; }}\n\
                     http {{\n  access_log off;\n  client_body_temp_path {tmp}/body;\n  proxy_temp_path {tmp}/proxy;\n\
                     fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n  scgi_temp_path {tmp}/scgi;\n\
                     types {{ text/plain txt; application/octet-stream bin; }}\n  default_type application/octet-stream;\n\
                     sendfile on;\n  gzip on;\n  gzip_types text/plain;\n  gzip_min_length 16;\n\
                     server {{\n    listen 127.0.0.1:{port};\n    root {root};\n  }}\n}}\n",
                    root = root.display()
                ),
            )
            .expect("writing nginx.conf");
            let mut child = Command::new(&nginx)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting nginx");
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    // Most likely the port was taken: try another.
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Some(Nginx {
                        addr,
                        child,
                        _dir: dir,
                    });
                }
                if Instant::now() > deadline {
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    let _ = child.kill();
                    panic!("nginx did not start listening on {addr}:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx could not find a free port in 20000–32767 after 20 tries");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
