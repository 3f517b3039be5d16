//! The HTTP client: one method per registry operation.

use std::fmt;
use std::time::Duration;

use reqwest::{Method, Url, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tributary_api::schema::Compatibility;

use crate::error::{
    RegistryError, SCHEMA_NOT_FOUND, SUBJECT_NOT_FOUND, SUBJECT_SOFT_DELETED, VERSION_NOT_FOUND, classify,
    error_details,
};
use crate::model::{
    CompatibilityCheckResponse, ConfigResponse, RegisterResponse, RegisteredSchema, SchemaDefinition,
    SchemaRequest, SchemaResponse, SubjectSchemaResponse,
};

/// How often a registration that failed transiently (collided with a
/// concurrent one, or a 5xx) is repeated, and the pause before the first
/// repeat (growing linearly).
const REGISTRATION_RETRIES: u32 = 4;
const REGISTRATION_BACKOFF: Duration = Duration::from_millis(50);
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// HTTP basic authentication (for Confluent Cloud: API key and secret).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// User name or API key.
    pub username: String,
    /// Password or API secret. Never printed.
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A client for one registry. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    auth: Option<RegistryAuth>,
}

/// An HTTP answer, successful or not.
struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A 404 carrying one of `codes`.
    fn is_not_found(&self, codes: &[i64]) -> bool {
        self.status == 404
            && error_details(self.status, &self.body)
                .0
                .is_some_and(|c| codes.contains(&c))
    }

    fn decode<T: DeserializeOwned>(&self, what: &str) -> Result<T, RegistryError> {
        serde_json::from_str(&self.body).map_err(|e| {
            let (_, excerpt) = error_details(self.status, &self.body);
            RegistryError::UnexpectedResponse(format!("{what}: {e} in answer {excerpt:?}"))
        })
    }
}

impl RegistryClient {
    /// A client for the registry at `base_url` (`http://…` or `https://…`,
    /// possibly with a path prefix). `ca_pem`: optional PEM bundle for https;
    /// when given, only its certificates are trusted (instead of the system
    /// store). `timeout` bounds each request, connecting included.
    pub fn new(
        base_url: &str,
        auth: Option<RegistryAuth>,
        ca_pem: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, RegistryError> {
        let base = parse_base_url(base_url)?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("tributary-registry/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| RegistryError::Config(format!("CA bundle: {}", error_chain(&e))))?;
            if certificates.is_empty() {
                return Err(RegistryError::Config(
                    "CA bundle holds no PEM certificate".to_owned(),
                ));
            }
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|e| RegistryError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(Self { http, base, auth })
    }

    /// The registry's base URL (never holds credentials).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /subjects`: the live subjects. Also serves as a reachability probe.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let reply = self.call(Method::GET, &["subjects"], &[], None).await?;
        self.expect_success(&reply)?;
        reply.decode("subject list")
    }

    /// `POST /subjects/{subject}`: the version holding exactly this schema, or
    /// `None` when the subject does not hold it (40403) or does not exist (40401).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &SchemaDefinition,
    ) -> Result<Option<RegisteredSchema>, RegistryError> {
        check_subject(subject)?;
        let body = encode(&SchemaRequest::from(schema))?;
        let reply = self
            .call(Method::POST, &["subjects", subject], &[], Some(body))
            .await?;
        if reply.is_not_found(&[SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND]) {
            return Ok(None);
        }
        self.expect_success(&reply)?;
        reply
            .decode::<SubjectSchemaResponse>("lookup")?
            .into_registered()
            .map(Some)
    }

    /// `POST /subjects/{subject}/versions`: registers the schema as the
    /// subject's newest version, or finds the version already holding it.
    /// Incompatible → [`RegistryError::Incompatible`] (HTTP 409); a schema the
    /// registry cannot parse, or with dangling references →
    /// [`RegistryError::InvalidSchema`] (HTTP 422).
    ///
    /// Confluent answers only the id, so the version comes from a lookup
    /// right after (unless the registry included it).
    pub async fn register(
        &self,
        subject: &str,
        schema: &SchemaDefinition,
    ) -> Result<RegisteredSchema, RegistryError> {
        check_subject(subject)?;
        let body = encode(&SchemaRequest::from(schema))?;
        // Registering is idempotent, so a registration that lost a race in the
        // registry's storage (Apicurio: 409 "already exists", or a 500 naming a
        // unique-constraint violation) or met a passing 5xx is simply repeated,
        // a few times, briefly apart.
        let mut attempt = 0;
        let reply = loop {
            let reply = self
                .call(
                    Method::POST,
                    &["subjects", subject, "versions"],
                    &[],
                    Some(body.clone()),
                )
                .await?;
            match self.expect_success(&reply) {
                Err(error) if error.is_transient() && attempt < REGISTRATION_RETRIES => {
                    attempt += 1;
                    tracing::debug!(subject, attempt, %error, "schema registry: registration failed transiently, repeating it");
                    tokio::time::sleep(REGISTRATION_BACKOFF * attempt).await;
                }
                _ => break reply,
            }
        };
        // Registering creates the subject, so a 404 here can only mean a
        // reference points at a subject or version that does not exist
        // (Apicurio answers 404/40402 where Confluent answers 422).
        if reply.status == 404 {
            return Err(match self.scrub(classify(reply.status, &reply.body)) {
                RegistryError::NotFound(message) => {
                    RegistryError::InvalidSchema(format!("reference not found: {message}"))
                }
                other => other,
            });
        }
        self.expect_success(&reply)?;
        let registered: RegisterResponse = reply.decode("registration")?;
        if let Some(version) = registered.version.filter(|v| *v > 0) {
            return Ok(RegisteredSchema {
                subject: subject.to_owned(),
                id: registered.id,
                version,
                schema: schema.clone(),
            });
        }
        match self.lookup(subject, schema).await? {
            Some(found) => {
                if found.id != registered.id {
                    tracing::warn!(
                        subject,
                        registered_id = registered.id,
                        lookup_id = found.id,
                        "schema registry: lookup after registration found another id"
                    );
                }
                Ok(found)
            }
            None => Err(RegistryError::NotFound(format!(
                "schema registered under subject {subject:?} as id {}, but a lookup does not find it (yet)",
                registered.id
            ))),
        }
    }

    /// `POST /compatibility/subjects/{subject}/versions/latest?verbose=true`:
    /// `Ok(())` when the schema is compatible with the subject's latest version
    /// under its compatibility level, or the subject has no versions yet;
    /// otherwise [`RegistryError::Incompatible`] with the registry's reasons.
    pub async fn check_compatibility(
        &self,
        subject: &str,
        schema: &SchemaDefinition,
    ) -> Result<(), RegistryError> {
        check_subject(subject)?;
        let body = encode(&SchemaRequest::from(schema))?;
        let reply = self
            .call(
                Method::POST,
                &["compatibility", "subjects", subject, "versions", "latest"],
                &[("verbose", "true")],
                Some(body),
            )
            .await?;
        if reply.is_not_found(&[SUBJECT_NOT_FOUND, VERSION_NOT_FOUND]) {
            return Ok(());
        }
        self.expect_success(&reply)?;
        let check: CompatibilityCheckResponse = reply.decode("compatibility check")?;
        if check.is_compatible {
            return Ok(());
        }
        let messages = check.messages.unwrap_or_default();
        Err(RegistryError::Incompatible(if messages.is_empty() {
            format!("schema is incompatible with the latest version of subject {subject:?}")
        } else {
            messages.join("; ")
        }))
    }

    /// `GET /subjects/{subject}/versions/latest`: `None` if the subject does
    /// not exist (or has no live version).
    pub async fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, RegistryError> {
        check_subject(subject)?;
        let reply = self
            .call(
                Method::GET,
                &["subjects", subject, "versions", "latest"],
                &[],
                None,
            )
            .await?;
        // 40402: what some registries answer for a soft-deleted subject.
        if reply.is_not_found(&[SUBJECT_NOT_FOUND, VERSION_NOT_FOUND]) {
            return Ok(None);
        }
        self.expect_success(&reply)?;
        reply
            .decode::<SubjectSchemaResponse>("latest version")?
            .into_registered()
            .map(Some)
    }

    /// `GET /schemas/ids/{id}`: the schema with this registry-wide id.
    pub async fn schema_by_id(&self, id: i64) -> Result<SchemaDefinition, RegistryError> {
        let id_text = id.to_string();
        let reply = self
            .call(Method::GET, &["schemas", "ids", &id_text], &[], None)
            .await?;
        self.expect_success(&reply)?;
        reply.decode::<SchemaResponse>("schema")?.into_definition()
    }

    /// The subject's effective compatibility level (e.g. `"BACKWARD"`): its
    /// own, else the global one. `GET /config/{subject}?defaultToGlobal=true`,
    /// falling back to `GET /config` when that answers 404 (registries
    /// without `defaultToGlobal`).
    pub async fn compatibility(&self, subject: &str) -> Result<String, RegistryError> {
        check_subject(subject)?;
        let reply = self
            .call(
                Method::GET,
                &["config", subject],
                &[("defaultToGlobal", "true")],
                None,
            )
            .await?;
        let reply = if reply.status == 404 {
            self.call(Method::GET, &["config"], &[], None).await?
        } else {
            reply
        };
        self.expect_success(&reply)?;
        reply
            .decode::<ConfigResponse>("compatibility config")?
            .level()
            .ok_or_else(|| {
                RegistryError::UnexpectedResponse("config without a compatibility level".to_owned())
            })
    }

    /// The subject's own compatibility level, `None` when it has none (it
    /// follows the global level) or does not exist. `GET /config/{subject}`.
    pub async fn subject_compatibility(&self, subject: &str) -> Result<Option<String>, RegistryError> {
        check_subject(subject)?;
        let reply = self.call(Method::GET, &["config", subject], &[], None).await?;
        // 40401 no such subject, 40408 no subject-level config (Confluent);
        // Apicurio answers 404 for a subject it does not know.
        if reply.status == 404 {
            return Ok(None);
        }
        self.expect_success(&reply)?;
        Ok(reply.decode::<ConfigResponse>("compatibility config")?.level())
    }

    /// `PUT /config/{subject}`: sets the subject's compatibility level.
    pub async fn set_compatibility(&self, subject: &str, level: Compatibility) -> Result<(), RegistryError> {
        #[derive(Serialize)]
        struct ConfigUpdate {
            compatibility: &'static str,
        }
        check_subject(subject)?;
        let body = encode(&ConfigUpdate {
            compatibility: level.as_str(),
        })?;
        let reply = self
            .call(Method::PUT, &["config", subject], &[], Some(body))
            .await?;
        self.expect_success(&reply)
    }

    /// `DELETE /subjects/{subject}`: soft-deletes every version of the
    /// subject; `Ok(())` if it does not exist. `permanent`: then also
    /// `DELETE /subjects/{subject}?permanent=true`, which frees the versions
    /// for good (the registry requires the soft delete first).
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<(), RegistryError> {
        check_subject(subject)?;
        let reply = self
            .call(Method::DELETE, &["subjects", subject], &[], None)
            .await?;
        if reply.is_not_found(&[SUBJECT_NOT_FOUND]) {
            return Ok(());
        }
        // 40404: soft-deleted earlier, which is what we want. Apicurio says
        // the same with a 400 ("cannot transition ... DISABLED to DISABLED");
        // on the way to a permanent delete either is fine.
        let already_soft_deleted =
            reply.is_not_found(&[SUBJECT_SOFT_DELETED]) || (permanent && reply.status == 400);
        if !already_soft_deleted {
            self.expect_success(&reply)?;
        }
        if !permanent {
            return Ok(());
        }
        let reply = self
            .call(
                Method::DELETE,
                &["subjects", subject],
                &[("permanent", "true")],
                None,
            )
            .await?;
        if reply.is_not_found(&[SUBJECT_NOT_FOUND]) {
            return Ok(());
        }
        self.expect_success(&reply)
    }

    /// Sends one request; any HTTP answer is a [`Reply`], only transport
    /// failures are errors.
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, RegistryError> {
        let url = self.endpoint(segments, query)?;
        let what = format!("{method} {}", url.path());
        let mut request = self.http.request(method, url).header(header::ACCEPT, ACCEPT);
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        if let Some(body) = body {
            request = request.header(header::CONTENT_TYPE, CONTENT_TYPE).body(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&what, e))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| self.transport_error(&what, e))?;
        tracing::debug!(request = %what, status, "schema registry answered");
        Ok(Reply { status, body })
    }

    fn endpoint(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, RegistryError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| RegistryError::Config("base URL cannot hold a path".to_owned()))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    fn transport_error(&self, what: &str, error: reqwest::Error) -> RegistryError {
        let error = error.without_url();
        let scrubbed = if error.is_builder() {
            RegistryError::Config(format!("{what}: {}", error_chain(&error)))
        } else {
            RegistryError::Unreachable(format!("{what} at {}: {}", self.base, error_chain(&error)))
        };
        self.scrub(scrubbed)
    }

    /// `Ok(())` for a 2xx answer, else the classified error.
    fn expect_success(&self, reply: &Reply) -> Result<(), RegistryError> {
        if reply.is_success() {
            Ok(())
        } else {
            Err(self.scrub(classify(reply.status, &reply.body)))
        }
    }

    fn scrub(&self, error: RegistryError) -> RegistryError {
        match &self.auth {
            Some(auth) => error.scrub(&auth.password),
            None => error,
        }
    }
}

fn parse_base_url(base_url: &str) -> Result<Url, RegistryError> {
    let url = Url::parse(base_url.trim())
        // The parser's messages never repeat the input, so no credentials leak.
        .map_err(|e| RegistryError::Config(format!("base URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RegistryError::Config(format!(
            "base URL: scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RegistryError::Config(
            "base URL must not carry credentials: use basic authentication".to_owned(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(RegistryError::Config("base URL has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(RegistryError::Config(
            "base URL must not have a query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() {
        Err(RegistryError::InvalidSchema(
            "the subject name is empty".to_owned(),
        ))
    } else {
        Ok(())
    }
}

fn encode<T: Serialize>(body: &T) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(body).map_err(|e| RegistryError::Config(format!("request body: {e}")))
}

/// An error and its sources, `: `-separated, skipping repeats.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> RegistryClient {
        RegistryClient::new(base, None, None, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn debug_redacts_the_password() {
        let auth = RegistryAuth {
            username: "api-key".into(),
            password: "s3cr3t-value".into(),
        };
        let text = format!("{auth:?}");
        assert!(text.contains("api-key"), "{text}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
        let client = RegistryClient::new(
            "https://registry.example:8081",
            Some(auth),
            None,
            Duration::from_secs(1),
        )
        .unwrap();
        let text = format!("{client:?}");
        assert!(!text.contains("s3cr3t-value"), "{text}");
    }

    #[test]
    fn credentials_in_the_url_are_refused_without_repeating_them() {
        let error = RegistryClient::new(
            "https://key:hunter2@registry.example",
            None,
            None,
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(error, RegistryError::Config(_)), "{error:?}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn bad_urls_and_bundles_are_config_errors() {
        for url in [
            "registry:8081",
            "ftp://registry",
            "not a url",
            "http://registry/?x=1",
        ] {
            let error = RegistryClient::new(url, None, None, Duration::from_secs(1)).unwrap_err();
            assert!(matches!(error, RegistryError::Config(_)), "{url}: {error:?}");
        }
        let error = RegistryClient::new(
            "https://registry",
            None,
            Some("no pem here"),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(error, RegistryError::Config(_)), "{error:?}");
    }

    #[test]
    fn endpoints_keep_the_path_prefix_and_escape_subjects() {
        let with_prefix = client("https://registry.example/sr/");
        assert_eq!(
            with_prefix
                .endpoint(&["subjects", "orders-value", "versions"], &[])
                .unwrap()
                .as_str(),
            "https://registry.example/sr/subjects/orders-value/versions"
        );
        let plain = client("http://127.0.0.1:8081");
        assert_eq!(
            plain
                .endpoint(&["subjects", "a/b c?#%"], &[("permanent", "true")])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8081/subjects/a%2Fb%20c%3F%23%25?permanent=true"
        );
    }
}
