//! A real boot: a Debian 12 root booted with `systemd-nspawn`, systemd as PID 1, and the
//! package used there the way an operator uses it:
//! 1. `dpkg -i` the .deb (built by `scripts/package.sh` from the release binaries): the user
//!    `drpair` exists, the units are installed, disabled and not running;
//! 2. the standby refuses to start while its token is missing (ExecStartPre config check);
//! 3. with a token, `systemctl enable --now drpaird-standby` returns only after READY=1, so
//!    `drpair pairs list` answers at once; it runs as `drpair`; its log lines reach the journal
//!    with their priority and without a second timestamp;
//! 4. an agent (scan tracker on an image file) is enabled and started the same way, reads with
//!    io_uring under the unit's system call filter, and its pair gets synced; `drpair status`
//!    shows it; a stop is clean;
//! 5. `apt-get remove` stops the running standby and removes the programs, keeping config,
//!    data and user; `apt-get purge` removes those too, and the enable links.
//!
//! Gated: runs only with `DRPAIR_TEST_BOOT=1` (`.ci/run` sets it). Needs root,
//! `systemd-container`, `script` (util-linux) and, the first time, `debootstrap` and the Debian
//! mirror (the root is cached in /var/cache/drpair-debootstrap, outside the clone, and copied
//! for each run). The container has its own network namespace, so its ports never collide with
//! the host's.

use drpair_e2e::{Daemon, TestEnv, step, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Where the pristine Debian root is kept between runs, and the file that says it is complete.
const CACHE: &str = "/var/cache/drpair-debootstrap";
const ROOT_NAME: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
const TOKEN_SETUP: &str = "head -c 24 /dev/urandom | base64 > /etc/drpair/token && \
    chown root:drpair /etc/drpair/token && chmod 0640 /etc/drpair/token";
const CLI: &str = "drpair --token-file /etc/drpair/token";
const AGENT_TOML: &str = r#"[agent]
pair = "boot-01"
disks = ["/srv/disks/disk0.img"]
standby = "127.0.0.1:7700"
tracker = "scan"
cut_interval = "2s"
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The cached Debian root, made by debootstrap the first time (then about a minute and a half).
fn debian_root() -> PathBuf {
    let cache = Path::new(CACHE);
    let root = cache.join(ROOT_NAME);
    let ready = cache.join(format!("{ROOT_NAME}.ready"));
    if ready.is_file() && root.join("usr/lib/systemd/systemd").exists() {
        return root;
    }
    let mirror = std::env::var("DRPAIR_DEBIAN_MIRROR").unwrap_or_else(|_| MIRROR.into());
    let partial = cache.join(format!("{ROOT_NAME}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(cache).expect("cache dir");
    step(format!("debootstrap of Debian 12 into {} (once; cached)", partial.display()));
    let t = Instant::now();
    let out = run(Command::new("debootstrap")
        .args(["--variant=minbase", "--include=systemd,systemd-sysv,dbus", "bookworm"])
        .arg(&partial)
        .arg(&mirror));
    assert!(out.status.success(), "debootstrap failed (apt-get install debootstrap; mirror {mirror}):\n{}", text(&out));
    std::fs::rename(&partial, &root).expect("rename root");
    std::fs::write(&ready, format!("debootstrap --variant=minbase bookworm from {mirror}\n")).expect("ready");
    step(format!("debootstrap took {:.0}s", t.elapsed().as_secs_f64()));
    root
}

/// The .deb of the release binaries, built now by scripts/package.sh.
fn package() -> PathBuf {
    let out = run(Command::new("bash").arg(repo().join("scripts/package.sh")));
    assert!(out.status.success(), "scripts/package.sh failed:\n{}", text(&out));
    let deb = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").trim().to_string();
    let deb = PathBuf::from(deb);
    assert!(deb.is_file(), "scripts/package.sh printed no .deb:\n{}", text(&out));
    deb
}

/// Children of `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    let mut found = vec![];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so parse after the last ')'.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(child);
        }
    }
    found
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// The first process named `name` below `root` (breadth first).
fn descendant_named(root: u32, name: &str) -> Option<u32> {
    let mut queue = std::collections::VecDeque::from(children(root));
    while let Some(pid) = queue.pop_front() {
        if comm(pid) == name {
            return Some(pid);
        }
        queue.extend(children(pid));
    }
    None
}

/// A booted container: `script` gives systemd-nspawn the terminal it wants; commands run in
/// the container's namespaces through nsenter. Dropping it kills the container.
struct Container {
    console: Daemon,
    init: u32,
}

impl Container {
    fn boot(env: &TestEnv, root: &Path) -> Self {
        let machine = format!("drpair-boot-{}", std::process::id());
        let nspawn = format!(
            // Landlock's calls are outside nspawn's own system call allow-list (drill checks use them).
            "systemd-nspawn -D {} --boot --register=no --keep-unit --private-network --machine={machine} \
             --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self'",
            root.display()
        );
        let log = env.path("console.log");
        env.add_log("console", &log);
        let mut console = Daemon::new(
            "container",
            Path::new("script"),
            vec!["-qfec".into(), nspawn.into(), "/dev/null".into()],
            vec![],
            log,
        );
        let t = Instant::now();
        console.start();
        let script = console.pid().expect("script pid");
        let init = wait_until("systemd-nspawn to start the container's init", Duration::from_secs(30), || {
            if let Some(st) = console.try_exit() {
                panic!("systemd-nspawn exited with {st}:\n{}", console.tail(40));
            }
            let nspawn =
                descendant_named(script, "systemd-nspawn").ok_or_else(|| "no systemd-nspawn yet".to_string())?;
            // The container's PID 1 is systemd-nspawn's child, systemd once it has exec'd.
            children(nspawn).into_iter().find(|&p| comm(p) == "systemd").ok_or_else(|| "no init yet".to_string())
        });
        let c = Self { console, init };
        let state = wait_until("systemd in the container to finish booting", Duration::from_secs(60), || {
            let out = c.exec("systemctl is-system-running --wait");
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if s == "running" || s == "degraded" { Ok(s) } else { Err(format!("is-system-running: {}", text(&out))) }
        });
        assert_eq!(state, "running", "the container booted degraded:\n{}", c.sh("systemctl --failed --no-pager"));
        step(format!("container booted in {:.1}s (systemd as PID 1)", t.elapsed().as_secs_f64()));
        c
    }

    /// Runs `script` with /bin/sh in the container, with a clean environment.
    fn exec(&self, script: &str) -> Output {
        run(Command::new("nsenter")
            .args(["-t", &self.init.to_string(), "-a", "/bin/sh", "-c", script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LANG", "C.UTF-8"))
    }

    /// Runs `script`; panics with its output unless it succeeds. Returns stdout and stderr.
    fn sh(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(out.status.success(), "in the container: {script}\n({}) {}", out.status, text(&out));
        text(&out)
    }

    /// Runs `script`; panics if it succeeds. Returns stdout and stderr.
    fn sh_fails(&self, script: &str) -> String {
        let out = self.exec(script);
        assert!(!out.status.success(), "in the container, should have failed: {script}\n{}", text(&out));
        text(&out)
    }

    /// `systemctl show UNIT -p PROP --value`.
    fn unit_property(&self, unit: &str, prop: &str) -> String {
        self.sh(&format!("systemctl show {unit} -p {prop} --value")).trim().to_string()
    }

    fn poweroff(mut self) {
        self.exec("systemctl poweroff");
        let st = self.console.wait_exit(Duration::from_secs(60));
        assert!(st.is_some(), "the container did not power off within 60 s:\n{}", self.console.tail(30));
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.console.is_running() {
            // Killing the container's init ends its PID namespace, then systemd-nspawn exits.
            if let Ok(pid) = i32::try_from(self.init) {
                // SAFETY: kill(2) with a pid read from /proc and a valid signal; at worst ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            self.console.wait_exit(Duration::from_secs(10));
        }
    }
}

#[test]
fn boot_install_run_remove_purge() {
    if std::env::var("DRPAIR_TEST_BOOT").as_deref() != Ok("1") {
        eprintln!("nspawn_boot: skipped (set DRPAIR_TEST_BOOT=1 to boot a Debian root with systemd-nspawn)");
        return;
    }
    let env = TestEnv::new("nspawn-boot");
    let cached = debian_root();
    let deb = package();
    step(format!("package {}", deb.display()));

    let root = env.path("root");
    let out = run(Command::new("cp").args(["-a", "--reflink=auto"]).arg(&cached).arg(&root));
    assert!(out.status.success(), "copy of {}: {}", cached.display(), text(&out));
    std::fs::copy(&deb, root.join("var/tmp/drpair.deb")).expect("copy .deb");
    let c = Container::boot(&env, &root);

    step("1. install");
    c.sh("dpkg -i /var/tmp/drpair.deb");
    c.sh("getent passwd drpair && getent group drpair");
    for unit in ["drpaird-standby", "drpaird-agent"] {
        assert_eq!(
            c.exec(&format!("systemctl is-enabled {unit}")).stdout,
            b"disabled\n",
            "{unit} enabled by the package"
        );
        assert_eq!(
            c.exec(&format!("systemctl is-active {unit}")).stdout,
            b"inactive\n",
            "{unit} started by the package"
        );
    }
    c.sh("test -f /etc/drpair/agent.toml && test -f /etc/drpair/standby.toml && test -d /var/lib/drpair");
    c.sh("test -x /usr/bin/drpaird && test -x /usr/bin/drpair && drpair --version && drpaird --version");
    c.sh("test -f /usr/share/man/man8/drpaird-standby.8.gz && test -f /usr/share/man/man1/drpair.1.gz");
    c.sh("test -f /usr/share/bash-completion/completions/drpair && test -f /usr/share/zsh/vendor-completions/_drpair");

    step("2. unconfigured: the standby refuses to start");
    c.sh_fails("systemctl start drpaird-standby");
    let journal = c.sh("journalctl -u drpaird-standby -o cat --no-pager");
    assert!(journal.contains("cannot read token file /etc/drpair/token"), "why it refused:\n{journal}");
    // Stop its restart loop; once stopped the unit may be unloaded, which reset-failed reports.
    c.sh("systemctl stop drpaird-standby; systemctl reset-failed drpaird-standby 2>/dev/null; true");

    step("3. the standby, configured, enabled and started");
    c.sh(TOKEN_SETUP);
    let t = Instant::now();
    c.sh("systemctl enable --now drpaird-standby");
    step(format!("systemctl enable --now drpaird-standby returned after {:.1}s", t.elapsed().as_secs_f64()));
    // Type=notify: start returned after READY=1, so the API answers now, without a retry.
    c.sh(&format!("{CLI} pairs list"));
    assert_eq!(c.unit_property("drpaird-standby", "ActiveState"), "active");
    let status = c.unit_property("drpaird-standby", "StatusText");
    assert!(status.starts_with("serving: link 0.0.0.0:7700, API 127.0.0.1:7701"), "status text: {status}");
    let pid = c.unit_property("drpaird-standby", "MainPID");
    let uid = c.sh(&format!("stat -c %U /proc/{pid}"));
    assert_eq!(uid.trim(), "drpair", "the standby runs as drpair");
    c.sh("test \"$(stat -c %U:%a /var/lib/drpair/standby)\" = drpair:750");
    let info = c.sh("journalctl -u drpaird-standby -p info..info -o cat --no-pager");
    // Filed at priority info from the "<6>" prefix, which journald strips; no time of our own.
    let line = info.lines().find(|l| l.contains("standby serving")).unwrap_or_else(|| panic!("no info line:\n{info}"));
    assert!(!line.contains("<6>"), "the priority prefix was not taken by journald: {line}");
    assert!(!line.trim_start().starts_with(|ch: char| ch.is_ascii_digit()), "a timestamp of our own: {line}");

    step("4. an agent on an image file, enabled and started");
    c.sh("mkdir -p /srv/disks && dd if=/dev/urandom of=/srv/disks/disk0.img bs=1M count=16 status=none");
    c.sh(&format!("cat > /etc/drpair/agent.toml <<'EOF'\n{AGENT_TOML}EOF"));
    // Enrolled as an operator would: the line `drpair pairs enroll` prints, run with the
    // agent's config; the agent then pins the standby and has a certificate for its pair.
    let line = c.sh(&format!("{CLI} pairs enroll boot-01 | grep 'drpaird agent enroll'"));
    step(format!("enroll line: {}", line.trim()));
    let enrolled = c.sh(&format!("{} --config /etc/drpair/agent.toml", line.trim()));
    assert!(enrolled.contains("protects pair boot-01"), "{enrolled}");
    c.sh("test \"$(stat -c %a /var/lib/drpair/agent/tls/agent.key)\" = 600");
    c.sh("systemctl enable --now drpaird-agent");
    let status = c.unit_property("drpaird-agent", "StatusText");
    assert!(status.starts_with("tracking 1 disk(s) of pair boot-01"), "status text: {status}");
    c.sh(&format!("{CLI} status boot-01 --wait-synced --timeout 120s"));
    let journal = c.sh("journalctl -u drpaird-agent -o cat --no-pager");
    assert!(journal.contains("engine=IoUring"), "io_uring under the unit's system call filter:\n{journal}");
    assert!(c.sh(&format!("{CLI} pairs list")).contains("boot-01"));

    step(
        "4b. a drill's check under the unit: confined by Landlock, it reads neither the store nor the token, nor signals the standby",
    );
    let pid = c.unit_property("drpaird-standby", "MainPID");
    let check = format!(
        "id -un; ls /var/lib/drpair/standby >/dev/null; echo store=$?; cat /etc/drpair/token; echo token=$?; kill -0 {pid}; echo kill=$?; cat /etc/os-release >/dev/null; echo etc=$?"
    );
    let started = c.sh(&format!("{CLI} --output json drill start boot-01 --ttl 5m --check '{check}'"));
    let drill: serde_json::Value = serde_json::from_str(&started).unwrap_or_else(|e| panic!("{e}: {started}"));
    let id = drill["id"].as_str().expect("drill id").to_string();
    let checked = wait_until("the drill's check", Duration::from_secs(60), || {
        let v: serde_json::Value = serde_json::from_str(&c.sh(&format!("{CLI} --output json drill report boot-01")))
            .map_err(|e| e.to_string())?;
        let d = v.as_array().and_then(|a| a.iter().find(|d| d["id"] == id.as_str())).cloned().ok_or("no drill")?;
        if d["check"]["passed"].is_boolean() {
            Ok(d["check"]["output"].as_str().unwrap_or("").to_string())
        } else {
            Err(d.to_string())
        }
    });
    let secret = c.sh("cat /etc/drpair/token");
    assert!(!checked.contains(secret.trim()), "the check read the token: {checked}");
    if checked.contains("this kernel does not enforce Landlock") {
        // Refused, never run unconfined: what a kernel (or container) without Landlock gets.
        assert!(checked.contains("the check was not run") && !checked.contains("store="), "{checked}");
        eprintln!("note: Landlock is not available in this container; the check was refused, not run unconfined");
    } else {
        assert!(checked.starts_with("drpair\n"), "the check runs as the standby's user, confined: {checked}");
        assert!(checked.contains("store=2") && checked.contains("token=1") && checked.contains("etc=0"), "{checked}");
    }
    if checked.contains("kill=0") {
        eprintln!("note: signals out of the check are not scoped on this kernel (Landlock ABI < 6)");
    }
    c.sh(&format!("{CLI} drill stop {id}"));
    step(format!("check output: {:?}", checked.lines().collect::<Vec<_>>()));
    c.sh("systemctl stop drpaird-agent");
    assert_eq!(c.unit_property("drpaird-agent", "Result"), "success", "a clean stop");
    let journal = c.sh("journalctl -u drpaird-agent -o cat --no-pager");
    assert!(journal.contains("change maps closed cleanly"), "clean stop:\n{journal}");
    assert_eq!(c.unit_property("drpaird-standby", "NRestarts"), "0");

    step("5. remove (the standby still running), then purge");
    c.sh("DEBIAN_FRONTEND=noninteractive apt-get remove -y -q drpair");
    assert_eq!(c.exec("systemctl is-active drpaird-standby").stdout, b"inactive\n", "remove stops the standby");
    c.sh("test ! -e /usr/bin/drpaird && test ! -e /usr/bin/drpair && test ! -e /usr/lib/systemd/system/drpaird-standby.service");
    c.sh("test -f /etc/drpair/standby.toml && test -f /etc/drpair/token && test -d /var/lib/drpair/standby");
    c.sh("getent passwd drpair");
    c.sh("DEBIAN_FRONTEND=noninteractive apt-get purge -y -q drpair");
    c.sh("test ! -e /etc/drpair && test ! -e /var/lib/drpair");
    c.sh_fails("getent passwd drpair");
    c.sh_fails("getent group drpair");
    c.sh_fails("ls /etc/systemd/system/multi-user.target.wants/ | grep drpair");
    c.sh_fails("dpkg -s drpair");
    c.poweroff();
    step("container powered off");
}
