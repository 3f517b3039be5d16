//! Kafka Connect standalone with Debezium's Postgres connector as a real
//! process, on a scenario's database with a slot, publication and topic prefix
//! of its own: the peer our output is compared with. Installed by
//! `scripts/infra/connect.sh` (`make infra-connect`, part of `make test`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use tributary_testkit::unique_name;

use super::{Scenario, host_port};

/// A running Kafka Connect worker with one Debezium Postgres connector.
pub struct Debezium {
    child: Child,
    pub log: PathBuf,
    /// Topic prefix (`topic.prefix`).
    pub prefix: String,
    /// Slot and publication name.
    pub slot: String,
}

impl Debezium {
    /// Starts Connect on `scenario`'s database with Debezium's defaults plus
    /// `extra` connector properties (`key=value` lines).
    pub fn start(scenario: &Scenario, extra: &str) -> Self {
        let tool = scenario.endpoints.tool("connect-standalone");
        assert!(
            tool.exists(),
            "{} is missing: run `make infra-connect` (scripts/infra/connect.sh install)",
            tool.display()
        );
        let slot = format!("{}_dbz", scenario.slot);
        let prefix = format!("{}-dbz", scenario.prefix);
        let (host, port) = host_port(&scenario.endpoints.postgres);
        let run = scenario.dir.join(unique_name("connect"));
        std::fs::create_dir_all(&run).unwrap();
        // Port 0: Jetty picks a free one; nothing here talks to the REST API.
        let worker = format!(
            "bootstrap.servers={bootstrap}\n\
             key.converter=org.apache.kafka.connect.json.JsonConverter\n\
             value.converter=org.apache.kafka.connect.json.JsonConverter\n\
             offset.storage.file.filename={offsets}\n\
             offset.flush.interval.ms=1000\n\
             listeners=http://127.0.0.1:0\n",
            bootstrap = scenario.endpoints.kafka_bootstrap,
            offsets = run.join("offsets").display(),
        );
        let connector = format!(
            "name={slot}\n\
             connector.class=io.debezium.connector.postgresql.PostgresConnector\n\
             tasks.max=1\n\
             database.hostname={host}\n\
             database.port={port}\n\
             database.user=postgres\n\
             database.dbname={db}\n\
             topic.prefix={prefix}\n\
             plugin.name=pgoutput\n\
             slot.name={slot}\n\
             publication.name={slot}\n\
             topic.creation.default.replication.factor=1\n\
             topic.creation.default.partitions=1\n\
             {extra}\n",
            db = scenario.database,
        );
        let worker_file = run.join("worker.properties");
        let connector_file = run.join("connector.properties");
        std::fs::write(&worker_file, worker).unwrap();
        std::fs::write(&connector_file, connector).unwrap();
        let log = run.join("connect.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(tool)
            .arg(&worker_file)
            .arg(&connector_file)
            .env("CONNECT_HEAP_OPTS", "-Xmx512m")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self {
            child,
            log,
            prefix,
            slot,
        }
    }

    /// The topic of `table` in schema `public`.
    pub fn topic(&self, table: &str) -> String {
        format!("{}.public.{table}", self.prefix)
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Debezium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
