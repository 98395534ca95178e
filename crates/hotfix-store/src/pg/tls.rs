//! TLS to PostgreSQL with libpq's `sslmode` and `sslrootcert` URL
//! parameters, on rustls with the ring provider (the one ureq already uses
//! in this tree: one crypto provider for the whole binary).
//!
//! Why our own: the `postgres` crate's URL parser knows only
//! `disable|prefer|require` and rejects `verify-ca`, `verify-full` and
//! `sslrootcert`, which is what every managed PostgreSQL (RDS, Cloud SQL,
//! Neon, Supabase) documents. So those parameters are taken out of the URL
//! here ([`split`], pure), the rest goes to the `postgres` parser untouched,
//! and the rustls client is built to match:
//!
//! | sslmode       | TLS                | the server's certificate                 |
//! |---------------|--------------------|------------------------------------------|
//! | `disable`     | never              | -                                        |
//! | `prefer`      | if the server can  | checked against a CA only if one is known |
//! | `require`     | always             | checked against a CA only if one is known |
//! | `verify-ca`   | always             | signed by the CA                          |
//! | `verify-full` | always             | signed by the CA and naming the host      |
//!
//! "A CA is known" as in libpq: `sslrootcert=PATH` (or `system`), else
//! `~/.postgresql/root.crt` if it exists. Without `sslmode` the default is
//! libpq's, `prefer`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::Socket;
use postgres::config::SslMode as PgSslMode;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<SslMode, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            // libpq's `allow` (plain first, TLS only if refused) is the one
            // mode that prefers plaintext; not worth a half-working copy.
            other => {
                return Err(format!(
                    "sslmode={other} is not supported: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Where the trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file with one or more CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the public CAs (Mozilla's list, built in), for
    /// servers with a certificate from a public CA (Neon, Supabase pooler…).
    System,
}

/// The TLS parameters [`split`] took out of a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    pub mode: SslMode,
    pub root: Option<RootCert>,
}

/// Takes libpq's TLS parameters out of a `postgres://` URL: returns the URL
/// without them (every other parameter kept byte for byte, for the
/// `postgres` parser) and what they asked for. Pure; the error says what
/// to change.
pub fn split(url: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams {
        mode: SslMode::Prefer,
        root: None,
    };
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), params));
    };
    let mut kept: Vec<&str> = vec![];
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k)?;
        match key.as_str() {
            "sslmode" => params.mode = SslMode::parse(&decode(v)?)?,
            "sslrootcert" => {
                let v = decode(v)?;
                if v.is_empty() {
                    return Err("sslrootcert is empty: give the path of the CA's PEM file (or sslrootcert=system)".into());
                }
                params.root = Some(if v == "system" {
                    RootCert::System
                } else {
                    RootCert::File(PathBuf::from(v))
                });
            }
            "sslcert" | "sslkey" | "sslpassword" => {
                return Err(format!(
                    "{key} is not supported: hotfix checks the server's certificate (sslmode, sslrootcert) but does not present one of its own; authenticate with a password in the URL"
                ));
            }
            "sslcrl" | "sslcrldir" => {
                return Err(format!(
                    "{key} is not supported: certificate revocation lists are not checked"
                ));
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

fn decode(s: &str) -> Result<String, String> {
    // `+` is not a space in a libpq URL, only `%20` is.
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("`{s}` in the database URL is not UTF-8 once decoded"))
}

/// libpq's default CA file, used when the URL names none.
fn default_root(home: Option<&Path>) -> Option<PathBuf> {
    let p = home?.join(".postgresql").join("root.crt");
    p.is_file().then_some(p)
}

/// What the handshake checks, once the CA question is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// Only that the server holds the key of the certificate it shows.
    Nothing,
    /// Also that a trusted CA signed it.
    Chain,
    /// Also that it names the host connected to.
    ChainAndName,
}

/// The `postgres` crate's mode for ours, and what to check. An error when
/// `verify-*` has no CA to verify with.
fn plan(
    params: &TlsParams,
    home: Option<&Path>,
) -> Result<(PgSslMode, Check, Option<RootCert>), String> {
    let root = params
        .root
        .clone()
        .or_else(|| default_root(home).map(RootCert::File));
    let check = match (params.mode, &root) {
        (SslMode::Disable, _) => return Ok((PgSslMode::Disable, Check::Nothing, None)),
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(format!(
                "sslmode={} needs the CA that signed the server's certificate: add sslrootcert=/path/to/ca.pem to the database URL (your provider's CA bundle), or sslrootcert=system for a certificate from a public CA",
                params.mode.as_str()
            ));
        }
        (SslMode::VerifyFull, Some(_)) => Check::ChainAndName,
        // libpq: with a CA at hand, `require` (and `prefer`) verify the chain.
        (_, Some(_)) => Check::Chain,
        (_, None) => Check::Nothing,
    };
    let pg = if params.mode == SslMode::Prefer {
        PgSslMode::Prefer
    } else {
        PgSslMode::Require
    };
    Ok((pg, check, root))
}

/// A URL made ready to connect: the `postgres` crate's config and the TLS
/// connector that goes with it.
pub struct Target {
    pub config: postgres::Config,
    pub tls: Tls,
}

/// Parses `url` (libpq TLS parameters included) and loads the CA file.
/// Errors never contain the URL (it may hold the password).
pub fn target(url: &str) -> Result<Target, String> {
    let (rest, params) = split(url)?;
    let mut config: postgres::Config = rest
        .parse()
        .map_err(|e| format!("the database URL is not valid: {e}"))?;
    let home = std::env::var_os(hotfix_core::env_vars::HOME).map(PathBuf::from);
    let (pg_mode, check, root) = plan(&params, home.as_deref())?;
    config.ssl_mode(pg_mode);
    let tls = if pg_mode == PgSslMode::Disable {
        Tls { shared: None }
    } else {
        Tls::new(check, root.as_ref())?
    };
    Ok(Target { config, tls })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::System => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        RootCert::File(p) => {
            let pem = std::fs::read(p)
                .map_err(|e| format!("sslrootcert: cannot read {}: {e}", p.display()))?;
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| {
                    format!(
                        "sslrootcert: {} is not a PEM certificate file: {e}",
                        p.display()
                    )
                })?;
                store.add(c).map_err(|e| {
                    format!(
                        "sslrootcert: {} holds a certificate rustls cannot use as a CA: {e}",
                        p.display()
                    )
                })?;
                n += 1;
            }
            if n == 0 {
                return Err(format!(
                    "sslrootcert: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    p.display()
                ));
            }
        }
    }
    Ok(store)
}

/// The connector handed to the `postgres` crate (and, cloned, to every
/// connection of the pool). `shared: None` is `sslmode=disable`, where the
/// crate never asks for a handshake.
#[derive(Clone, Debug)]
pub struct Tls {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    config: Arc<ClientConfig>,
    /// "the CA in /path", for errors.
    ca: String,
}

impl Tls {
    fn new(check: Check, root: Option<&RootCert>) -> Result<Tls, String> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match (check, root) {
            (Check::Nothing, _) | (_, None) => Arc::new(NoChain(provider.clone())),
            (Check::Chain | Check::ChainAndName, Some(r)) => {
                let web = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(load_roots(r)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| format!("sslrootcert: {e}"))?;
                Arc::new(Chain {
                    inner: web,
                    names: check == Check::ChainAndName,
                })
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let ca = match root {
            Some(RootCert::File(p)) => format!("the CA in {}", p.display()),
            Some(RootCert::System) => "a public CA (sslrootcert=system)".into(),
            None => "no CA".into(),
        };
        Ok(Tls {
            shared: Some(Arc::new(Shared {
                config: Arc::new(config),
                ca,
            })),
        })
    }
}

/// `require`/`prefer` without a CA: libpq's "encrypt, but I do not check
/// who answers". The handshake signatures are still verified, so the
/// session is bound to the certificate's key.
#[derive(Debug)]
struct NoChain(Arc<CryptoProvider>);

impl ServerCertVerifier for NoChain {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca` (`names: false`) and `verify-full`: webpki's checks, with
/// the host name check dropped for `verify-ca` (webpki checks the name only
/// once the chain is good, so a name error means the chain passed).
#[derive(Debug)]
struct Chain {
    inner: Arc<WebPkiServerVerifier>,
    names: bool,
}

impl ServerCertVerifier for Chain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS failure put in words that name the fix.
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn explain(e: &std::io::Error, shared: &Shared, host: &str) -> TlsError {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let ca = &shared.ca;
    TlsError(match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "TLS: the server's certificate is not signed by {ca}: set sslrootcert to the CA that signed it (your provider's CA bundle)"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "TLS: the server's certificate is not valid for the host name {host} (sslmode=verify-full): connect by a name the certificate lists, or use sslmode=verify-ca to check only the CA"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: the server's certificate is not valid yet (is this machine's clock right?)"
                    .to_string()
            }
            other => format!(
                "TLS: the server's certificate was refused ({other:?}), checked against {ca}"
            ),
        },
        Some(other) => format!("TLS handshake with the server failed: {other}"),
        None => format!("TLS handshake with the server failed: {e}"),
    })
}

impl MakeTlsConnect<Socket> for Tls {
    type Stream = PgTlsStream;
    type TlsConnect = Connect;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, TlsError> {
        Ok(Connect {
            shared: self.shared.clone(),
            host: domain.to_string(),
        })
    }
}

/// One handshake, for the host the `postgres` crate is connecting to.
pub struct Connect {
    shared: Option<Arc<Shared>>,
    host: String,
}

impl TlsConnect<Socket> for Connect {
    type Stream = PgTlsStream;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<PgTlsStream, TlsError>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let Some(shared) = self.shared else {
                return Err(TlsError("TLS is off (sslmode=disable)".into()));
            };
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                TlsError(format!(
                    "TLS: `{}` is not a host name or IP address a certificate can name",
                    self.host
                ))
            })?;
            let connector = tokio_rustls::TlsConnector::from(shared.config.clone());
            match connector.connect(name, stream).await {
                Ok(s) => Ok(PgTlsStream(Box::new(s))),
                Err(e) => Err(explain(&e, &shared, &self.host)),
            }
        })
    }
}

/// The encrypted connection. No channel binding is offered: SCRAM then
/// runs without `-PLUS`, as libpq's `channel_binding=prefer` does with a
/// server that has none; the certificate checks above are what bind the
/// session to the right server.
pub struct PgTlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for PgTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for PgTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for PgTlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(mode: SslMode, root: Option<RootCert>) -> TlsParams {
        TlsParams { mode, root }
    }

    #[test]
    fn libpq_parameters_are_taken_out_and_the_rest_kept_as_written() {
        let (rest, p) = split(
            "postgres://u:p%40ss@db:5432/x?sslmode=verify-full&options=-c%20search_path%3Dhf&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(
            rest,
            "postgres://u:p%40ss@db:5432/x?options=-c%20search_path%3Dhf"
        );
        assert_eq!(
            p,
            params(
                SslMode::VerifyFull,
                Some(RootCert::File("/etc/ca.pem".into()))
            )
        );
        let (rest, p) = split("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), p),
            ("postgres://db/x", params(SslMode::Require, None))
        );
        let (rest, p) = split("postgres://db/x").unwrap();
        assert_eq!(
            (rest.as_str(), p),
            ("postgres://db/x", params(SslMode::Prefer, None))
        );
        let (_, p) = split("postgres://db/x?sslrootcert=system&sslmode=verify-ca").unwrap();
        assert_eq!(p, params(SslMode::VerifyCa, Some(RootCert::System)));
        // What the `postgres` parser would reject gets a message naming the fix.
        for (url, says) in [
            (
                "postgres://db/x?sslmode=allow",
                "sslmode=allow is not supported",
            ),
            (
                "postgres://db/x?sslmode=verify_full",
                "use disable, prefer, require, verify-ca or verify-full",
            ),
            ("postgres://db/x?sslcert=/c.pem", "sslcert is not supported"),
            ("postgres://db/x?sslrootcert=", "sslrootcert is empty"),
        ] {
            let e = split(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn the_modes_plan_what_libpq_checks() {
        let dir = tempfile::tempdir().unwrap();
        let no_home = Some(dir.path());
        let ca = Some(RootCert::File("/ca.pem".into()));
        let cases = [
            (
                SslMode::Disable,
                ca.clone(),
                PgSslMode::Disable,
                Check::Nothing,
            ),
            (SslMode::Prefer, None, PgSslMode::Prefer, Check::Nothing),
            (SslMode::Prefer, ca.clone(), PgSslMode::Prefer, Check::Chain),
            (SslMode::Require, None, PgSslMode::Require, Check::Nothing),
            (
                SslMode::Require,
                ca.clone(),
                PgSslMode::Require,
                Check::Chain,
            ),
            (
                SslMode::VerifyCa,
                ca.clone(),
                PgSslMode::Require,
                Check::Chain,
            ),
            (
                SslMode::VerifyFull,
                ca.clone(),
                PgSslMode::Require,
                Check::ChainAndName,
            ),
        ];
        for (mode, root, pg, check) in cases {
            let (got_pg, got_check, _) = plan(&params(mode, root), no_home).unwrap();
            assert_eq!((got_pg, got_check), (pg, check), "{mode:?}");
        }
        let e = plan(&params(SslMode::VerifyFull, None), no_home).unwrap_err();
        assert!(
            e.contains("sslmode=verify-full needs the CA") && e.contains("sslrootcert="),
            "{e}"
        );
        // libpq's default CA file counts as a known CA.
        std::fs::create_dir(dir.path().join(".postgresql")).unwrap();
        std::fs::write(dir.path().join(".postgresql/root.crt"), "x").unwrap();
        let (_, check, root) = plan(&params(SslMode::Require, None), no_home).unwrap();
        assert_eq!(check, Check::Chain);
        assert_eq!(
            root,
            Some(RootCert::File(dir.path().join(".postgresql/root.crt")))
        );
    }

    #[test]
    fn a_bad_ca_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = load_roots(&RootCert::File(missing.clone())).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("nope.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = load_roots(&RootCert::File(empty)).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        assert!(!load_roots(&RootCert::System).unwrap().is_empty());
    }

    #[test]
    fn the_password_never_reaches_an_error() {
        let e =
            target("postgres://u:s3cret@db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .err()
                .unwrap();
        assert!(e.contains("cannot read") && !e.contains("s3cret"), "{e}");
        let e = target("postgres://u:s3cret@db/x?bogus=1").err().unwrap();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
