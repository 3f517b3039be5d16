#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tributary_kafka::{KafkaAdmin, KafkaConnection};
#[tokio::test]
async fn show() {
    let a = KafkaAdmin::new(&KafkaConnection::plaintext("127.0.0.1:1"), Duration::from_secs(3)).unwrap();
    let t = Instant::now();
    eprintln!("{} ({:?})", a.describe_cluster().await.unwrap_err(), t.elapsed());
    let t = Instant::now();
    eprintln!("{} ({:?})", a.create_topic("x", 1, None, &BTreeMap::new()).await.unwrap_err(), t.elapsed());
    let a = KafkaAdmin::new(&KafkaConnection::plaintext("nosuchhost.invalid:9092"), Duration::from_secs(3)).unwrap();
    eprintln!("{}", a.describe_topic("x").await.unwrap_err());
    let a = KafkaAdmin::new(&KafkaConnection::plaintext("127.0.0.1:19092"), Duration::from_secs(10)).unwrap();
    let name = tributary_testkit::unique_name("scratch");
    let mut c = BTreeMap::new();
    c.insert("cleanup.policy".to_owned(), "bogus".to_owned());
    eprintln!("{}", a.create_topic(&name, 1, None, &c).await.unwrap_err());
    a.create_topic(&name, 2, None, &BTreeMap::new()).await.unwrap();
    let t = Instant::now();
    eprintln!("{} ({:?})", a.set_topic_overrides(&name, &c).await.unwrap_err(), t.elapsed());
    eprintln!("{}", a.create_partitions(&name, 1).await.unwrap_err());
    eprintln!("{}", a.create_topic(&tributary_testkit::unique_name("scratch"), 0, None, &BTreeMap::new()).await.unwrap_err());
    eprintln!("{}", a.create_topic("bad name!", 1, None, &BTreeMap::new()).await.unwrap_err());
    eprintln!("{:?}", a.describe_cluster().await.unwrap());
    eprintln!("{a:?}");
    a.delete_topic(&name).await.unwrap();
}
