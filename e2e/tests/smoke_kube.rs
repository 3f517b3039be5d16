//! Control-plane smoke test: a kube client sees a Ready (kwok) node and can
//! create and delete a namespace, which needs the namespace controller of a
//! real kube-controller-manager to finish.

// Test helpers outside #[test] functions fail loudly, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use support::client;
use tributary_testkit::{eventually, unique_name};

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[tokio::test]
async fn lists_a_ready_node() {
    let nodes: Api<Node> = Api::all(client().await);
    let list = nodes
        .list(&ListParams::default())
        .await
        .expect("listing nodes on the local apiserver");
    let ready: Vec<_> = list.items.iter().filter(|n| is_ready(n)).collect();
    assert!(
        !ready.is_empty(),
        "no Ready node among {} nodes",
        list.items.len()
    );
}

#[tokio::test]
async fn creates_and_deletes_a_namespace() {
    let namespaces: Api<Namespace> = Api::all(client().await);
    let name = unique_name("smoke");
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(name.clone());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("creating a namespace");

    let created = namespaces.get(&name).await.unwrap();
    assert_eq!(created.status.and_then(|s| s.phase).as_deref(), Some("Active"));

    namespaces.delete(&name, &DeleteParams::default()).await.unwrap();
    eventually("namespace deleted", Duration::from_mins(1), || async {
        Ok(namespaces.get_opt(&name).await?.is_none().then_some(()))
    })
    .await
    .unwrap();
}
