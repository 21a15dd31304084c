//! Credentials for secured servers: NATS JWTs for operator mode, `.creds` files, TLS certificates.

use std::time::Duration;

use base64::Engine as _;

use crate::servers::NatsServer;

/// NATS JWTs for an operator-mode server: an operator, an account it signs, users the account signs.
pub struct Operator {
    pub operator: nkeys::KeyPair,
    pub account: nkeys::KeyPair,
    pub operator_jwt: String,
    pub account_jwt: String,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT with `claims`, issued by `issuer` for `subject`.
pub fn sign_jwt(
    issuer: &nkeys::KeyPair,
    subject: &str,
    name: &str,
    nats: serde_json::Value,
) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "ed25519-nkey"});
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "jti": format!("{}{}", name.to_uppercase(), iat),
        "iat": iat,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = issuer.sign(signing_input.as_bytes()).expect("sign JWT");
    format!("{signing_input}.{}", b64url(&signature))
}

impl Operator {
    pub fn new() -> Operator {
        let operator = nkeys::KeyPair::new_operator();
        let account = nkeys::KeyPair::new_account();
        let operator_jwt = sign_jwt(
            &operator,
            &operator.public_key(),
            "test-operator",
            serde_json::json!({"type": "operator", "version": 2}),
        );
        let account_jwt = sign_jwt(
            &operator,
            &account.public_key(),
            "test-account",
            serde_json::json!({"type": "account", "version": 2, "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                "wildcards": true, "conn": -1, "leaf": -1
            }}),
        );
        Operator {
            operator,
            account,
            operator_jwt,
            account_jwt,
        }
    }

    /// Server config text for operator mode with the account preloaded.
    pub fn server_config(&self) -> String {
        format!(
            "operator: \"{}\"\nresolver: MEMORY\nresolver_preload: {{ {}: \"{}\" }}\n",
            self.operator_jwt,
            self.account.public_key(),
            self.account_jwt
        )
    }

    /// A new user of the account: (JWT, seed). `allow_pub` limits what it may publish to.
    pub fn user(&self, allow_pub: Option<&[&str]>) -> (String, String) {
        let user = nkeys::KeyPair::new_user();
        let publish = match allow_pub {
            Some(subjects) => serde_json::json!({"allow": subjects}),
            None => serde_json::json!({}),
        };
        let jwt = sign_jwt(
            &self.account,
            &user.public_key(),
            "test-user",
            serde_json::json!({"type": "user", "version": 2, "pub": publish, "sub": {}, "subs": -1, "data": -1, "payload": -1}),
        );
        (jwt, user.seed().expect("user seed"))
    }
}

impl Default for Operator {
    fn default() -> Self {
        Operator::new()
    }
}

/// Certificates for TLS tests, as PEM files in a temp dir: a CA, a server certificate for
/// 127.0.0.1 signed by it, a client certificate signed by it, and an unrelated CA.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("write a PEM file")
        };
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
                .expect("self-sign the CA")
        };
        let issuer = ca("nats-sink test CA");
        write("ca.pem", issuer.pem());
        write("other-ca.pem", ca("an unrelated CA").pem());
        for (name, names) in [
            ("server", vec!["127.0.0.1".to_string(), "localhost".into()]),
            ("client", vec!["nats-sink-client".to_string()]),
        ] {
            let key = KeyPair::generate().expect("key");
            let cert = CertificateParams::new(names)
                .expect("params")
                .signed_by(&key, &issuer)
                .expect("sign");
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    /// The path of one of the PEM files: `ca`, `other-ca`, `server`, `server-key`, `client`,
    /// `client-key`.
    pub fn path(&self, name: &str) -> String {
        self.dir
            .path()
            .join(format!("{name}.pem"))
            .display()
            .to_string()
    }

    /// Server config text requiring TLS; with `verify_clients`, also a client certificate.
    pub fn server_config(&self, verify_clients: bool) -> String {
        format!(
            "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify_clients}\n  timeout: 2\n}}\n",
            self.path("server"),
            self.path("server-key"),
            self.path("ca"),
        )
    }

    /// A client of `server` that trusts the test CA (and presents the client certificate).
    pub async fn client(&self, server: &NatsServer) -> async_nats::Client {
        let options = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.path("ca").into())
            .add_client_certificate(self.path("client").into(), self.path("client-key").into());
        tokio::time::timeout(Duration::from_secs(5), options.connect(server.url()))
            .await
            .expect("connect within 5 s")
            .expect("connect over TLS")
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A `.creds` file's text, as `nsc` writes it.
pub fn creds_file_text(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}
