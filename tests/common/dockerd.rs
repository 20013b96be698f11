//! A private Docker engine for a test: Debian's `dockerd` on its own socket, data root
//! and exec root (its own containerd), no bridge and no iptables, with a `busybox:local`
//! image imported from the static busybox (no registry is reachable). Stopped, and its
//! directories removed, when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::Docker;
use futures::StreamExt;

/// The image every docker test uses.
pub const IMAGE: &str = "busybox:local";

/// A running private dockerd.
pub struct Dockerd {
    /// `unix://…/docker.sock`.
    pub host: String,
    dir: PathBuf,
    child: Option<Child>,
    rt: tokio::runtime::Runtime,
}

fn dockerd_bin() -> PathBuf {
    for p in ["/usr/sbin/dockerd", "/usr/bin/dockerd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("dockerd is not installed: scripts/test.sh installs docker.io (apt)");
}

impl Dockerd {
    /// Starts one and imports the busybox image.
    pub fn start() -> Self {
        // Short: containerd's socket path under it must fit a unix socket name.
        let dir = PathBuf::from(format!(
            "/tmp/weir-dockerd-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        let sock = dir.join("docker.sock");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(dockerd_bin())
            .arg("--config-file")
            .arg(dir.join("daemon.json"))
            .arg("--host")
            .arg(format!("unix://{}", sock.display()))
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("docker.pid"))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--log-level=warn",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let d = Dockerd {
            host: format!("unix://{}", sock.display()),
            dir,
            child: Some(child),
            rt,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = sock.exists() && d.rt.block_on(async { d.client().ping().await.is_ok() });
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer; its log:\n{}",
                std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d.import_busybox();
        d
    }

    /// A client of this engine.
    pub fn client(&self) -> Docker {
        Docker::connect_with_socket(&self.host, 120, bollard::API_DEFAULT_VERSION).unwrap()
    }

    /// Runs a future on this helper's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn import_busybox(&self) {
        let tar = busybox_rootfs();
        let options = bollard::query_parameters::CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo("busybox")
            .tag("local")
            .changes(vec![
                "ENV PATH=/bin".to_string(),
                "CMD [\"sh\"]".to_string(),
            ])
            .build();
        let docker = self.client();
        self.rt.block_on(async {
            let mut s =
                docker.create_image(Some(options), Some(bollard::body_full(tar.into())), None);
            while let Some(r) = s.next().await {
                r.expect("busybox image imports");
            }
        });
    }

    /// The containers of this engine, running or not.
    pub fn containers(&self) -> Vec<String> {
        let docker = self.client();
        self.rt.block_on(async {
            let o = bollard::query_parameters::ListContainersOptionsBuilder::new()
                .all(true)
                .build();
            docker
                .list_containers(Some(o))
                .await
                .unwrap()
                .into_iter()
                .filter_map(|c| c.id)
                .collect()
        })
    }

    /// Whether an image is on the engine.
    pub fn has_image(&self, name: &str) -> Option<String> {
        let docker = self.client();
        self.rt
            .block_on(async { docker.inspect_image(name).await.ok().and_then(|i| i.id) })
    }

    /// Polls until a container exists (a docker step has started).
    pub fn wait_a_container(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.containers().is_empty() {
            assert!(Instant::now() < deadline, "no container was started");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until no container is left (each step's container is removed after it).
    pub fn wait_no_containers(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = self.containers();
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containers left behind: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    (h.finish() & 0xffff_ffff) as u32
}

/// A root filesystem with the static busybox and its applets, as a tar.
fn busybox_rootfs() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox: scripts/test.sh installs busybox-static (apt)");
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, p: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        b.append_data(&mut h, p, std::io::empty()).unwrap();
    };
    for (d, m) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
        ("root", 0o700),
    ] {
        dir(&mut b, d, m);
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(busybox.len() as u64);
    h.set_mode(0o755);
    b.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .unwrap();
    for applet in [
        "sh", "cat", "echo", "sleep", "head", "yes", "dd", "tr", "wc", "true", "false", "ls", "env",
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(passwd.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
    b.into_inner().unwrap()
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first: a running one makes dockerd wait 10 s at stop.
        for id in self.containers() {
            let docker = self.client();
            let o = bollard::query_parameters::RemoveContainerOptionsBuilder::new()
                .force(true)
                .build();
            let _ = self.rt.block_on(docker.remove_container(&id, Some(o)));
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Mounts left under the directory (deepest first), then the directory.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let mut under: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split(' ').nth(1))
                .filter(|m| m.starts_with(self.dir.to_str().unwrap_or("-")))
                .collect();
            under.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in under {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
