//! A local Postgres cluster with pg_hatchet preloaded: what `hatchet-server dev` runs, and what the integration
//! tests start in a temporary directory.
//!
//! Layout of the data directory:
//!
//! ```text
//! DIR/pgdata/        the cluster (initdb), settings appended to postgresql.conf
//! DIR/run/           unix socket directory (the server connects here, never over TCP)
//! DIR/postgres.log   server log (pg_ctl -l)
//! ```
//!
//! Postgres refuses to run as root. When this process is root, every Postgres binary runs as the `postgres` user
//! through `runuser` and the directories are handed to that user; otherwise they run as the current user. The
//! cluster uses `trust` authentication: it listens only on its socket directory and 127.0.0.1, and is meant for one
//! developer's machine or a test, never for production (use `hatchet-server serve` against a real Postgres there).

use crate::{config::DEFAULT_TENANT_ID, db};
use anyhow::{bail, Context};
use nix::unistd::{chown, User};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::Command;

/// Where Debian puts the Postgres 15 binaries.
pub const DEFAULT_PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// The database `dev` creates; the extension's background worker is told to use it (`hatchet.database_name`).
const DEFAULT_DATABASE: &str = "hatchet";

/// What cluster to run and where.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Parent of `pgdata/`, `run/` and `postgres.log`. Made absolute on use.
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1 (the socket file is named after it too).
    pub port: u16,
    /// Directory holding `initdb`, `pg_ctl` and `pg_config`.
    pub pg_bin_dir: PathBuf,
    /// The database to create with the extension.
    pub database: String,
}

impl ClusterSpec {
    /// A spec with the Debian Postgres 15 binaries and the `hatchet` database.
    pub fn new(data_dir: impl Into<PathBuf>, port: u16) -> Self {
        Self {
            data_dir: data_dir.into(),
            port,
            pg_bin_dir: PathBuf::from(DEFAULT_PG_BIN_DIR),
            database: DEFAULT_DATABASE.to_owned(),
        }
    }
}

/// A Postgres cluster managed with `initdb` / `pg_ctl`.
#[derive(Debug)]
pub struct LocalCluster {
    spec: ClusterSpec,
    /// The user Postgres runs as when we are root.
    run_as: Option<User>,
}

impl LocalCluster {
    /// Resolves the spec (absolute paths, which user runs Postgres). Touches nothing on disk.
    pub fn new(mut spec: ClusterSpec) -> anyhow::Result<Self> {
        spec.data_dir = std::path::absolute(&spec.data_dir).with_context(|| {
            format!("cannot resolve data directory {}", spec.data_dir.display())
        })?;
        let run_as = if nix::unistd::geteuid().is_root() {
            let user = User::from_name("postgres")
                .context("cannot look up the postgres user")?
                .context("running as root, but there is no `postgres` user to run Postgres as")?;
            Some(user)
        } else {
            None
        };
        Ok(Self { spec, run_as })
    }

    /// The cluster directory (`DIR/pgdata`).
    pub fn pgdata(&self) -> PathBuf {
        self.spec.data_dir.join("pgdata")
    }

    /// The unix socket directory (`DIR/run`).
    fn socket_dir(&self) -> PathBuf {
        self.spec.data_dir.join("run")
    }

    /// The server log (`DIR/postgres.log`).
    fn log_file(&self) -> PathBuf {
        self.spec.data_dir.join("postgres.log")
    }

    /// The spec this cluster was built from (with an absolute data directory).
    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// Connection options for `database` over the unix socket, as the `postgres` superuser.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .socket(self.socket_dir())
            .port(self.spec.port)
            .username("postgres")
            .database(database)
            .application_name("hatchet-server")
    }

    /// A `postgres://` URL for the spec's database over the unix socket (for `psql` or `serve --database-url`).
    pub fn database_url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/{}?host={}",
            self.spec.port,
            self.spec.database,
            self.socket_dir().display()
        )
    }

    /// Fails with instructions if pg_hatchet's library or control file is missing from this Postgres
    /// installation. Checked before starting, because `shared_preload_libraries` would otherwise stop Postgres
    /// from starting with a less helpful message.
    pub async fn check_extension_installed(&self) -> anyhow::Result<()> {
        let pg_config = self.spec.pg_bin_dir.join("pg_config");
        let libdir = self.pg_config_value(&pg_config, "--pkglibdir").await?;
        let sharedir = self.pg_config_value(&pg_config, "--sharedir").await?;
        let library = Path::new(&libdir).join("pg_hatchet.so");
        let control = Path::new(&sharedir)
            .join("extension")
            .join("pg_hatchet.control");
        let missing: Vec<String> = [&library, &control]
            .into_iter()
            .filter(|p| !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            bail!(
                "the pg_hatchet extension is not installed in the Postgres at {} (missing {}).\n\
                 Build and install it first: run `make dev` from the repository root, or \
                 `cargo pgrx install --release --pg-config {}` in pg_hatchet/.",
                self.spec.pg_bin_dir.display(),
                missing.join(", "),
                pg_config.display()
            );
        }
        Ok(())
    }

    async fn pg_config_value(&self, pg_config: &Path, flag: &str) -> anyhow::Result<String> {
        let out = Command::new(pg_config)
            .arg(flag)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| {
                format!(
                    "cannot run {} (is Postgres 15 installed? Debian: apt-get install postgresql-15)",
                    pg_config.display()
                )
            })?;
        if !out.status.success() {
            bail!(
                "{} {flag} failed: {}",
                pg_config.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Creates the directories and runs `initdb` unless `pgdata` already holds a cluster. Returns true if it
    /// created one. New clusters get pg_hatchet preloaded and listen only on the socket directory and 127.0.0.1.
    pub async fn init_if_absent(&self) -> anyhow::Result<bool> {
        let pgdata = self.pgdata();
        if pgdata.join("PG_VERSION").exists() {
            return Ok(false);
        }
        for dir in [&self.spec.data_dir, &self.socket_dir()] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if let Some(user) = &self.run_as {
            for dir in [&self.spec.data_dir, &self.socket_dir()] {
                chown(dir.as_path(), Some(user.uid), Some(user.gid)).with_context(|| {
                    format!("cannot give {} to the postgres user", dir.display())
                })?;
            }
            let probe = self
                .run(
                    "test",
                    [
                        OsString::from("-w"),
                        self.spec.data_dir.clone().into_os_string(),
                    ],
                )
                .await?;
            if !probe.status.success() {
                bail!(
                    "the postgres user cannot write to {} (is a parent directory private to root?); \
                     choose a --data-dir it can reach, for example under /var/tmp",
                    self.spec.data_dir.display()
                );
            }
        }

        let out = self
            .run_on_pgdata(
                "initdb",
                [
                    "--username=postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
                .map(OsString::from),
            )
            .await?;
        check(&out, "initdb")?;

        let socket_dir = self.socket_dir().display().to_string().replace('\'', "''");
        let settings = format!(
            "\n# Added by hatchet-server: a local cluster for pg_hatchet.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             shared_preload_libraries = 'pg_hatchet'\n\
             hatchet.database_name = '{}'\n",
            self.spec.database.replace('\'', "''")
        );
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(pgdata.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .context("cannot write postgresql.conf")?;
        Ok(true)
    }

    /// Whether a postmaster is running on `pgdata` (`pg_ctl status`).
    async fn is_running(&self) -> anyhow::Result<bool> {
        let out = self.run_on_pgdata("pg_ctl", ["status".into()]).await?;
        Ok(out.status.success())
    }

    /// Starts the cluster and waits until it accepts connections. Returns false (and does nothing) if it was
    /// already running, in which case the caller should not stop it either.
    pub async fn start(&self) -> anyhow::Result<bool> {
        if self.is_running().await? {
            return Ok(false);
        }
        let out = self
            .run_on_pgdata(
                "pg_ctl",
                [
                    "-l".into(),
                    self.log_file().into_os_string(),
                    "-o".into(),
                    format!("-p {}", self.spec.port).into(),
                    "-w".into(),
                    "-t".into(),
                    "60".into(),
                    "start".into(),
                ],
            )
            .await?;
        if !out.status.success() {
            bail!(
                "pg_ctl start failed: {}\nlast lines of {}:\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_file().display(),
                log_tail(&self.log_file(), 20)
            );
        }
        Ok(true)
    }

    /// Stops the cluster with `pg_ctl stop -m fast` (open sessions are disconnected, nothing is lost).
    pub async fn stop(&self) -> anyhow::Result<()> {
        let out = self
            .run_on_pgdata(
                "pg_ctl",
                ["-m", "fast", "-w", "-t", "60", "stop"].map(OsString::from),
            )
            .await?;
        check(&out, "pg_ctl stop")
    }

    /// Creates the spec's database if absent and `CREATE EXTENSION IF NOT EXISTS pg_hatchet` in it, then checks
    /// the extension created the default tenant.
    pub async fn prepare_database(&self) -> anyhow::Result<()> {
        let database = &self.spec.database;
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.connect_options("postgres"))
            .await
            .context("cannot connect to the local cluster")?;
        if !db::database_exists(&admin, database).await? {
            db::create_database(&admin, database)
                .await
                .with_context(|| format!("cannot create database \"{database}\""))?;
        }
        admin.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.connect_options(database))
            .await
            .with_context(|| format!("cannot connect to database \"{database}\""))?;
        ensure_extension(&pool).await?;
        pool.close().await;
        Ok(())
    }

    /// Runs one of the cluster's Postgres programs (`initdb`, `pg_ctl`) on its data directory: `-D <pgdata>`, then
    /// `args`.
    async fn run_on_pgdata<I>(&self, program: &str, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = OsString>,
    {
        let path = self.spec.pg_bin_dir.join(program);
        let pgdata = [OsString::from("-D"), self.pgdata().into_os_string()];
        self.run(path, pgdata.into_iter().chain(args)).await
    }

    /// Runs a program, as the postgres user when we are root, with a working directory that user can enter.
    async fn run<I>(&self, program: impl Into<OsString>, args: I) -> anyhow::Result<Output>
    where
        I: IntoIterator<Item = OsString>,
    {
        let program = program.into();
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.arg("-u").arg(&user.name).arg("--").arg(&program);
                cmd
            }
            None => Command::new(&program),
        };
        let cwd = if self.spec.data_dir.is_dir() {
            self.spec.data_dir.clone()
        } else {
            PathBuf::from("/")
        };
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("cannot run {}", Path::new(&program).display()))
    }
}

/// Creates pg_hatchet in the pool's database (if it is installed) and checks the default tenant exists.
async fn ensure_extension(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    if db::extension_version(pool).await?.is_none() {
        if !db::extension_available(pool).await? {
            bail!(
                "the pg_hatchet extension is not installed in this Postgres; build and install it first \
                 (`make dev`, or `cargo pgrx install` in pg_hatchet/)"
            );
        }
        db::create_extension(pool)
            .await
            .context("CREATE EXTENSION pg_hatchet failed")?;
    }
    if !db::tenants::tenant_exists(pool, DEFAULT_TENANT_ID).await? {
        bail!("the pg_hatchet extension did not create the default tenant {DEFAULT_TENANT_ID}");
    }
    Ok(())
}

fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read it: {err})"),
    }
}
