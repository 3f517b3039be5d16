//! The Schema controller: registers a `Schema`'s text under its subject in
//! the KafkaCluster's schema registry and keeps the subject's compatibility
//! level as declared.
//!
//! read (cluster, registry: is this exact schema already registered? current
//! level) → [`plan`] (pure) → act (register / set level) → status (id,
//! version). An incompatible change is refused by the registry: the version
//! registered before stays in place and the Schema turns Stalled with the
//! registry's message.

use std::sync::Arc;
use std::time::Instant;

use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tributary_api::schema::{Compatibility, Schema, SchemaStatus};
use tributary_api::{DeletionPolicy, Health, KafkaCluster};
use tributary_registry::{RegisteredSchema, RegistryClient, RegistryError, SchemaDefinition};

use super::{Failure, ReconcileError, Shutdown, publish_event};
use crate::cluster::{self, ClusterError, SecretValues};
use crate::context::Context;

/// Finalizer that lets the operator honour `deletionPolicy`.
pub const FINALIZER: &str = "tributary.dev/schema";
const CONTROLLER: &str = "schema";

/// One change to make in the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaAction {
    /// Set the subject's compatibility level (before registering, so the new
    /// level governs the registration).
    SetCompatibility(Compatibility),
    /// Register the schema as a new version of the subject.
    Register,
}

/// Decides what to do: `registered` is the lookup of this exact schema under
/// the subject, `subject_level` the subject's own compatibility level (`None`:
/// it follows the global level, which the declared level must not rely on).
///
/// The level is set before registering so it governs the new version; on a
/// subject without versions it is set after the first registration, since
/// there is nothing to be compatible with yet and some registries (Apicurio)
/// drop a level set on a subject that does not exist.
pub fn plan(
    desired_level: Option<Compatibility>,
    subject_level: Option<&str>,
    registered: Option<&RegisteredSchema>,
    subject_exists: bool,
) -> Vec<SchemaAction> {
    let set_level = desired_level
        .filter(|level| subject_level.is_none_or(|current| !level.as_str().eq_ignore_ascii_case(current)))
        .map(SchemaAction::SetCompatibility);
    let register = registered.is_none().then_some(SchemaAction::Register);
    if subject_exists {
        set_level.into_iter().chain(register).collect()
    } else {
        register.into_iter().chain(set_level).collect()
    }
}

struct SchemaContext {
    context: Context,
    schemas: Store<Schema>,
}

/// Runs the Schema controller until `shutdown`.
pub async fn run(context: Context, shutdown: Shutdown) {
    let schemas: Api<Schema> = context.watched_api();
    let clusters: Api<KafkaCluster> = context.watched_api();
    let controller = Controller::new(schemas, watcher::Config::default());
    let store = controller.store();
    let mapper_store = store.clone();
    let reconciles = controller
        .watches(clusters, watcher::Config::default(), move |cluster| {
            super::users_of(&mapper_store, &cluster, |s: &Schema| s.spec.cluster_ref.as_ref())
        })
        .with_config(super::runtime_config(&context))
        .graceful_shutdown_on(shutdown)
        .run(
            reconcile,
            error_policy,
            Arc::new(SchemaContext {
                context,
                schemas: store,
            }),
        );
    super::drain(CONTROLLER, reconciles).await;
}

#[allow(clippy::needless_pass_by_value)] // the signature kube-runtime expects
fn error_policy(schema: Arc<Schema>, error: &ReconcileError, ctx: Arc<SchemaContext>) -> Action {
    super::error_policy(&*schema, error, &ctx.context)
}

async fn reconcile(schema: Arc<Schema>, ctx: Arc<SchemaContext>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let context = &ctx.context;
    let api: Api<Schema> = Api::namespaced(context.client.clone(), &schema.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, schema, |event| async {
        match event {
            FinalizerEvent::Apply(schema) => apply(&api, &schema, &ctx).await,
            FinalizerEvent::Cleanup(schema) => cleanup(&schema, &ctx).await,
        }
    })
    .await
    .map_err(super::from_finalizer);
    super::record(context, CONTROLLER, &result, started);
    result
}

/// What a reconcile found, before it is written to status.
struct Outcome {
    health: Health,
    registered: Option<RegisteredSchema>,
    compatibility: Option<String>,
}

async fn apply(api: &Api<Schema>, schema: &Schema, ctx: &SchemaContext) -> Result<Action, ReconcileError> {
    let context = &ctx.context;
    let outcome = match sync(schema, ctx).await {
        Ok(outcome) => outcome,
        Err(failure) => Outcome {
            health: failure.health(),
            registered: None,
            compatibility: None,
        },
    };
    write_status(api, schema, &outcome).await?;
    super::next_action(context, schema, &outcome.health)
}

fn definition(schema: &Schema) -> SchemaDefinition {
    SchemaDefinition {
        schema_type: schema.spec.schema_type,
        schema: schema.spec.schema.clone(),
        references: schema.spec.references.clone(),
    }
}

/// The registry client, and the name of the KafkaCluster it belongs to.
async fn connect(schema: &Schema, context: &Context) -> Result<(String, RegistryClient), Failure> {
    let namespace = schema.namespace().unwrap_or_default();
    let cluster = cluster::resolve(&context.client, &namespace, schema.spec.cluster_ref.as_ref())
        .await
        .map_err(Failure::from)?;
    let secrets = SecretValues::read(&context.client, &cluster)
        .await
        .map_err(Failure::from)?;
    let client = cluster::registry_client(&cluster, &secrets, context.settings.request_timeout)
        .map_err(Failure::from)?
        .ok_or_else(|| Failure::from(ClusterError::NoRegistry(cluster.name_any())));
    Ok((cluster.name_any(), client?))
}

async fn sync(schema: &Schema, ctx: &SchemaContext) -> Result<Outcome, Failure> {
    let context = &ctx.context;
    let subject = schema.subject().unwrap_or_default().to_owned();
    let (cluster, registry) = connect(schema, context).await?;
    // One Schema per subject.
    if let Some(owner) = subject_owner(schema, &ctx.schemas.state(), &cluster) {
        return Err(Failure::stalled(
            "SubjectConflict",
            format!(
                "subject {subject} is already managed by Schema {owner}; delete one of them or set a different spec.subject"
            ),
        ));
    }
    let definition = definition(schema);

    // read
    let subject_level = registry
        .subject_compatibility(&subject)
        .await
        .map_err(Failure::from)?;
    let registered = registry
        .lookup(&subject, &definition)
        .await
        .map_err(Failure::from)?;

    // plan + act
    let mut level = match &subject_level {
        Some(level) => level.clone(),
        None => registry.compatibility(&subject).await.map_err(Failure::from)?,
    };
    let mut registered = registered;
    let subject_exists =
        registered.is_some() || registry.latest(&subject).await.map_err(Failure::from)?.is_some();
    for action in plan(
        schema.spec.compatibility,
        subject_level.as_deref(),
        registered.as_ref(),
        subject_exists,
    ) {
        match action {
            SchemaAction::SetCompatibility(wanted) => {
                registry
                    .set_compatibility(&subject, wanted)
                    .await
                    .map_err(Failure::from)?;
                publish_event(
                    context,
                    schema,
                    EventType::Normal,
                    "CompatibilitySet",
                    format!("subject {subject} compatibility set to {}", wanted.as_str()),
                )
                .await;
                wanted.as_str().clone_into(&mut level);
            }
            SchemaAction::Register => match registry.register(&subject, &definition).await {
                Ok(new) => {
                    publish_event(
                        context,
                        schema,
                        EventType::Normal,
                        "SchemaRegistered",
                        format!(
                            "registered subject {subject} version {} (id {})",
                            new.version, new.id
                        ),
                    )
                    .await;
                    registered = Some(new);
                }
                Err(RegistryError::Incompatible(message)) => {
                    return Ok(refused(context, schema, &registry, &subject, level, message).await);
                }
                Err(error) => return Err(Failure::from(error)),
            },
        }
    }
    let Some(registered) = registered else {
        return Err(Failure::transient(
            "SchemaNotVisible",
            format!("subject {subject}: registered schema not found on lookup"),
        ));
    };
    Ok(Outcome {
        health: Health::Ready {
            reason: "SchemaRegistered".to_owned(),
            message: format!(
                "subject {subject} version {} (id {})",
                registered.version, registered.id
            ),
        },
        registered: Some(registered),
        compatibility: Some(level),
    })
}

/// The registry refused an incompatible change: the version registered
/// before stays, and the status says why in the registry's words.
async fn refused(
    context: &Context,
    schema: &Schema,
    registry: &RegistryClient,
    subject: &str,
    level: String,
    message: String,
) -> Outcome {
    let previous = registry.latest(subject).await.ok().flatten();
    publish_event(
        context,
        schema,
        EventType::Warning,
        "IncompatibleSchema",
        message.clone(),
    )
    .await;
    Outcome {
        health: Health::Stalled {
            reason: "IncompatibleSchema".to_owned(),
            message: format!(
                "the registry refused spec.schema as incompatible with subject {subject} ({level}); \
                 the registered version stays in place: {message}"
            ),
        },
        registered: previous,
        compatibility: Some(level),
    }
}

async fn write_status(api: &Api<Schema>, schema: &Schema, outcome: &Outcome) -> Result<(), kube::Error> {
    let previous = schema.status.clone().unwrap_or_default();
    let mut status = SchemaStatus {
        conditions: outcome.health.conditions(
            &previous.conditions,
            schema.metadata.generation,
            &crate::status::now(),
        ),
        observed_generation: schema.metadata.generation,
        subject: schema.subject().map(str::to_owned),
        ..previous.clone()
    };
    if let Some(registered) = &outcome.registered {
        status.id = Some(registered.id);
        status.version = Some(registered.version);
    }
    if let Some(level) = &outcome.compatibility {
        status.compatibility = Some(level.clone());
    }
    crate::status::apply(api, schema, schema.status.as_ref(), &status).await
}

async fn cleanup(schema: &Schema, ctx: &SchemaContext) -> Result<Action, ReconcileError> {
    let context = &ctx.context;
    let subject = schema.subject().unwrap_or_default().to_owned();
    if schema.spec.deletion_policy == DeletionPolicy::Retain {
        publish_event(
            context,
            schema,
            EventType::Normal,
            "SubjectRetained",
            format!("kept subject {subject} (deletionPolicy Retain)"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let registry = match connect(schema, context).await {
        Ok((cluster, _)) if subject_owner(schema, &ctx.schemas.state(), &cluster).is_some() => {
            publish_event(
                context,
                schema,
                EventType::Normal,
                "SubjectRetained",
                format!("subject {subject} belongs to another Schema; not deleted"),
            )
            .await;
            return Ok(Action::await_change());
        }
        Ok((_, registry)) => registry,
        Err(failure) if !failure.transient || failure.reason == "KafkaClusterNotFound" => {
            publish_event(
                context,
                schema,
                EventType::Warning,
                "SubjectNotDeleted",
                format!("subject {subject} was not deleted: {}", failure.message),
            )
            .await;
            return Ok(Action::await_change());
        }
        Err(failure) => return Err(failure.into()),
    };
    registry
        .delete_subject(&subject, false)
        .await
        .map_err(|e| ReconcileError::from(Failure::from(e)))?;
    publish_event(
        context,
        schema,
        EventType::Normal,
        "SubjectDeleted",
        format!("soft-deleted subject {subject} (deletionPolicy Delete)"),
    )
    .await;
    Ok(Action::await_change())
}

/// Another Schema that manages the same subject in the same cluster's
/// registry and came first: `namespace/name` of it.
fn subject_owner(schema: &Schema, all: &[Arc<Schema>], cluster: &str) -> Option<String> {
    super::earlier_claimant(schema, all, |s: &Schema| {
        (
            s.namespace(),
            s.spec
                .cluster_ref
                .as_ref()
                .map_or(cluster, |r| r.name.as_str())
                .to_owned(),
            s.subject().map(str::to_owned),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_api::schema::SchemaType;

    fn registered() -> RegisteredSchema {
        RegisteredSchema {
            subject: "ratings-value".into(),
            id: 7,
            version: 2,
            schema: SchemaDefinition {
                schema_type: SchemaType::Avro,
                schema: "\"string\"".into(),
                references: vec![],
            },
        }
    }

    #[test]
    fn new_schema_is_registered() {
        assert_eq!(
            plan(None, Some("BACKWARD"), None, true),
            vec![SchemaAction::Register]
        );
    }

    #[test]
    fn registered_schema_at_the_declared_level_needs_nothing() {
        assert!(
            plan(
                Some(Compatibility::Backward),
                Some("BACKWARD"),
                Some(&registered()),
                true
            )
            .is_empty()
        );
    }

    #[test]
    fn a_level_inherited_from_global_is_pinned_on_the_subject() {
        assert_eq!(
            plan(Some(Compatibility::Backward), None, Some(&registered()), true),
            vec![SchemaAction::SetCompatibility(Compatibility::Backward)]
        );
    }

    #[test]
    fn level_is_set_before_registering() {
        assert_eq!(
            plan(Some(Compatibility::FullTransitive), Some("BACKWARD"), None, true),
            vec![
                SchemaAction::SetCompatibility(Compatibility::FullTransitive),
                SchemaAction::Register
            ]
        );
        // A new subject: register first, then set its level.
        assert_eq!(
            plan(Some(Compatibility::FullTransitive), None, None, false),
            vec![
                SchemaAction::Register,
                SchemaAction::SetCompatibility(Compatibility::FullTransitive)
            ]
        );
    }
}
