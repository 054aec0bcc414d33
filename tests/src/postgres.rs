//! A throwaway PostgreSQL cluster: initdb in a temp dir, a free 127.0.0.1
//! port, SCRAM for TCP, the gateway role, SQL fixtures; stopped and removed
//! on drop (also when a test panics). PostgreSQL refuses to run as root, so
//! under root the server runs as the `postgres` system user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The role the proxy logs in as upstream.
pub const GATEWAY_ROLE: &str = "clsf_gateway";
/// The database fixtures are loaded into.
pub const DATABASE: &str = "shop";

/// A running cluster.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<String>,
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The gateway role's password.
    pub gateway_password: String,
}

fn find_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLSF_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    candidates.retain(|p| p.join("initdb").exists());
    candidates.sort();
    if let Some(best) = candidates.pop() {
        return best;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package postgresql-15 \
         (tests/run.sh does this when run as root) or set CLSF_PG_BIN"
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The real `psql` of the server's version. On Debian `/usr/bin/psql` is
/// postgresql-common's Perl wrapper, which picks a version first: that
/// costs about 28 ms of CPU per run (12 ms for psql itself), and the suite
/// runs psql well over a thousand times.
pub fn psql() -> Command {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        let direct = find_bin_dir().join("psql");
        if direct.exists() {
            direct
        } else {
            PathBuf::from("psql")
        }
    });
    Command::new(program)
}

/// A loopback TCP port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where clusters (and their initdb template) live: `CLSF_PG_DIR` if set;
/// otherwise `/dev/shm` when it is a memory file system with room for the
/// suite (2 GiB free), else `/tmp`. The clusters are thrown away and run
/// with `fsync = off`, so nothing is lost by keeping them in memory, and on
/// this machine's ext4 making the ~1 000 files of a cluster and of each
/// `CREATE DATABASE` costs about a second of kernel time per cluster
/// (1.5 s per start, create-database and stop under `/tmp`, 0.4 s under
/// `/dev/shm`).
fn scratch_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("CLSF_PG_DIR") {
            return PathBuf::from(dir);
        }
        let shm = Path::new("/dev/shm");
        if memory_fs_with_room(shm, 2 << 20) {
            return shm.to_path_buf();
        }
        PathBuf::from("/tmp")
    })
    .clone()
}

/// True when `dir` is a writable tmpfs with at least `kib` KiB free
/// (`df`'s POSIX output: type, then available 1K blocks).
fn memory_fs_with_room(dir: &Path, kib: u64) -> bool {
    let Ok(out) = Command::new("df")
        .args(["-P", "-k", "-T"])
        .arg(dir)
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(row) = text.lines().nth(1) else {
        return false;
    };
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (Some(&kind), Some(available)) = (fields.get(1), fields.get(4)) else {
        return false;
    };
    let writable = tempfile::Builder::new()
        .prefix("clsf-probe-")
        .tempdir_in(dir)
        .is_ok();
    out.status.success()
        && kind == "tmpfs"
        && available.parse::<u64>().is_ok_and(|a| a >= kib)
        && writable
}

/// Bump when the initdb arguments below change, so old templates are
/// not reused.
const TEMPLATE_VERSION: &str = "2";

/// The data directory of one `initdb` with the suite's settings, made once
/// per machine and PostgreSQL installation (under the temp dir, by an
/// atomic rename so concurrent test processes agree), never started.
fn template(pg: &Postgres) -> PathBuf {
    static TEMPLATE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            pg.bin.hash(&mut h);
            pg.run_as.hash(&mut h);
            let path = scratch_dir().join(format!(
                "clsf-pg-template-v{TEMPLATE_VERSION}-{:016x}",
                h.finish()
            ));
            if path.join("global/pg_control").exists() {
                return path;
            }
            let build = tempfile::Builder::new()
                .prefix("clsf-pg-template-build-")
                .tempdir_in(scratch_dir())
                .expect("temp dir");
            if pg.run_as.is_some() {
                let out = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(build.path())
                    .output()
                    .expect("chown");
                check(out, "chown of the template directory to postgres");
            }
            let data = build.path().join("data");
            let out = pg
                .command("initdb")
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                    // 1 MB WAL segments instead of 16: every cluster is a
                    // copy of this directory, and the first segment was 16
                    // of its 39 MB.
                    "--wal-segsize=1",
                ])
                .output()
                .expect("run initdb");
            check(out, "initdb");
            // Another process may have won the race: then its copy is used.
            if std::fs::rename(&data, &path).is_err() {
                assert!(
                    path.join("global/pg_control").exists(),
                    "could not place the initdb template at {}",
                    path.display()
                );
            }
            path
        })
        .clone()
}

impl Postgres {
    /// Starts a fresh cluster with the gateway role and an empty `shop` database.
    pub fn start() -> Postgres {
        let bin = find_bin_dir();
        let run_as = is_root().then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("clsf-pg-")
            .tempdir_in(scratch_dir())
            .expect("temp dir");
        if run_as.is_some() {
            let out = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .output()
                .expect("chown");
            check(out, "chown of the cluster directory to postgres");
        }
        let mut pg = Postgres {
            dir,
            bin,
            run_as,
            port: 0,
            gateway_password: format!("gw-{}-{}", std::process::id(), free_port()),
        };
        let pwfile = pg.dir.path().join("superuser.pw");
        std::fs::write(&pwfile, "unused\n").expect("write pw file");
        if pg.run_as.is_some() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&pwfile)
                .output();
        }
        let data = pg.data_dir();
        // A copy of one initdb per machine: initdb costs a second or more
        // of CPU, and the suite starts dozens of clusters.
        let out = Command::new("cp")
            .arg("-a")
            .arg(template(&pg))
            .arg(&data)
            .output()
            .expect("cp");
        check(out, "copying the initdb template");
        std::fs::create_dir_all(pg.socket_dir()).expect("socket dir");
        if pg.run_as.is_some() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(pg.socket_dir())
                .output();
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 40\nshared_buffers = 16MB\nlog_connections = on\nlog_statement = all\n",
                pg.port,
                pg.socket_dir().display()
            );
            std::fs::write(data.join("postgresql.auto.conf"), conf).expect("write config");
            let out = pg
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.log_path())
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                last_error.clear();
                break;
            }
            last_error = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(pg.log_path()).unwrap_or_default()
            );
        }
        assert!(
            last_error.is_empty(),
            "PostgreSQL did not start:\n{last_error}"
        );
        // One psql for both (each `-c` is its own transaction, as CREATE
        // DATABASE needs). FILE_COPY copies template1's files instead of
        // writing each of its pages through the WAL (PostgreSQL 15's
        // default): less CPU for a database this small.
        let out = pg
            .superuser_psql("postgres")
            .args([
                "-c",
                &format!(
                    "SET password_encryption = 'scram-sha-256'; CREATE ROLE {GATEWAY_ROLE} LOGIN PASSWORD '{}'",
                    pg.gateway_password
                ),
                "-c",
                &format!("CREATE DATABASE {DATABASE} OWNER {GATEWAY_ROLE} STRATEGY FILE_COPY"),
            ])
            .output()
            .expect("psql is installed (Debian package postgresql-client)");
        check(out, "creating the gateway role and its database");
        pg
    }

    /// Appends settings to the cluster's configuration and restarts it (for
    /// settings such as `max_connections` that need a restart).
    pub fn restart_with(&self, settings: &str) {
        let conf = self.data_dir().join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read config");
        text.push_str(settings);
        text.push('\n');
        std::fs::write(&conf, text).expect("write config");
        self.pg_ctl(&["-w", "-t", "60", "restart"]);
    }

    /// Stops the server (fast shutdown) until [`Postgres::start_again`].
    pub fn stop(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }

    /// Starts the server stopped by [`Postgres::stop`].
    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(args)
            .output()
            .expect("run pg_ctl");
        check(out, &format!("pg_ctl {}", args.last().unwrap_or(&"")));
    }

    /// Runs a program as the cluster's owner (`postgres` under root), for
    /// servers that refuse to run as root, such as pgbouncer.
    pub fn command_as_owner(&self, program: &Path) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// The user servers started with [`Postgres::command_as_owner`] run as.
    pub fn owner(&self) -> Option<&str> {
        self.run_as.as_deref()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Path of a PostgreSQL program (such as `pgbench`) of this cluster's version.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The server log (connections are logged).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server log's text.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Runs SQL as the superuser over the Unix socket; returns unaligned,
    /// tuples-only output.
    pub fn superuser_sql(&self, database: &str, sql: &str) -> String {
        let out = self
            .superuser_psql(database)
            .args(["-A", "-t", "-c", sql])
            .output()
            .expect("psql is installed (Debian package postgresql-client)");
        check(out, &format!("psql -c {sql:?}"))
    }

    /// A libpq conninfo string for the superuser over the Unix socket, for
    /// a client process a test keeps running (e.g. one holding a lock).
    pub fn superuser_conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={database}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// psql as the superuser over the Unix socket, stopping at the first error.
    fn superuser_psql(&self, database: &str) -> Command {
        let mut c = psql();
        c.arg("-h").arg(self.socket_dir()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
        ]);
        c
    }

    /// Loads a SQL file into `shop` as the superuser and gives the gateway
    /// role full rights on what it created.
    pub fn load_fixture(&self, path: &Path) {
        let out = self
            .superuser_psql(DATABASE)
            .arg("-f")
            .arg(path)
            .output()
            .expect("psql is installed");
        check(out, &format!("loading {}", path.display()));
        self.superuser_sql(
            DATABASE,
            &format!("GRANT ALL ON ALL TABLES IN SCHEMA public TO {GATEWAY_ROLE}; GRANT ALL ON SCHEMA public TO {GATEWAY_ROLE};"),
        );
    }

    /// Turns on TLS with a certificate and key (PEM), by reloading the
    /// configuration: clients may then use `sslmode=require` or `verify-full`.
    pub fn enable_tls(&self, cert: &Path, key: &Path) {
        let data = self.data_dir();
        std::fs::copy(cert, data.join("server.crt")).expect("copy certificate");
        std::fs::copy(key, data.join("server.key")).expect("copy key");
        if self.run_as.is_some() {
            for f in ["server.crt", "server.key"] {
                let _ = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(data.join(f))
                    .output();
            }
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod key");
        self.superuser_sql("postgres", "ALTER SYSTEM SET ssl = on");
        self.superuser_sql("postgres", "SELECT pg_reload_conf()");
        let ready = self.wait_for(Duration::from_secs(10), |pg| {
            pg.superuser_sql("postgres", "SHOW ssl").trim() == "on"
        });
        assert!(ready, "PostgreSQL did not turn TLS on:\n{}", self.log());
    }

    /// Creates pgbench's tables at `scale` in `shop`, owned by the gateway role.
    pub fn pgbench_init(&self, scale: u32) {
        let out = Command::new(self.program("pgbench"))
            .args([
                "-i",
                "-s",
                &scale.to_string(),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                GATEWAY_ROLE,
                DATABASE,
            ])
            .env("PGPASSWORD", &self.gateway_password)
            .output()
            .expect("run pgbench -i");
        check(out, "pgbench -i");
    }

    /// Runs a SQL file as the superuser in `database`, from the file's
    /// directory. With `stop_on_error` false, failing statements are skipped
    /// (for published dumps whose `\\copy` lines need data files that are not
    /// shipped); the output is returned either way.
    pub fn run_file(&self, database: &str, path: &Path, stop_on_error: bool) -> String {
        let mut cmd = self.superuser_psql(database);
        if !stop_on_error {
            cmd.args(["-v", "ON_ERROR_STOP=0"]);
        }
        if let Some(dir) = path.parent() {
            cmd.current_dir(dir);
        }
        let out = cmd.arg("-f").arg(path).output().expect("psql is installed");
        if stop_on_error {
            check(out, &format!("running {}", path.display()))
        } else {
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    }

    /// A URL for the gateway role over TCP, to `database`.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{GATEWAY_ROLE}:{}@127.0.0.1:{}/{database}",
            self.gateway_password, self.port
        )
    }

    /// A URL for the gateway role over TCP.
    pub fn gateway_url(&self) -> String {
        format!(
            "postgres://{GATEWAY_ROLE}:{}@127.0.0.1:{}/{DATABASE}",
            self.gateway_password, self.port
        )
    }

    /// Waits until `probe` returns true, polling for at most `limit`.
    pub fn wait_for(&self, limit: Duration, mut probe: impl FnMut(&Postgres) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if probe(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}
