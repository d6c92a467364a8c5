//! Connection settings: which service (address), which organization, and which API token.
//!
//! [`resolve`] turns the flags, the environment, the manifest's `organization:` and the
//! Terraform CLI credentials file into one validated [`Connection`], with the precedence the
//! contract fixes. It takes the environment and the home directory as arguments so that every
//! rule is tested without touching the process environment.
//!
//! The token is held in a [`Token`] (a [`secrecy::SecretString`]) from the moment it is read:
//! its `Debug` prints `Token(***)`, it has no `Display`, and only the API client exposes it, to
//! build the `Authorization` header. No error in this module ever carries the token's text.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

/// The service used when neither `--address`, `TFE_ADDRESS` nor `TFE_HOSTNAME` names one.
pub const DEFAULT_ADDRESS: &str = "https://app.terraform.io";

/// Where Terraform keeps the tokens `terraform login` obtains, relative to the home directory.
pub const CREDENTIALS_FILE: &str = ".terraform.d/credentials.tfrc.json";

/// Token files and credentials files larger than this are certainly not what the user meant.
const MAX_TOKEN_FILE_BYTES: u64 = 64 * 1024;

/// The connection flags shared by `plan`, `sync` and `watch` (flattened into each command).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnectionArgs {
    /// API origin (requests go to URL/api/v2/...) [default: https://$TFE_HOSTNAME, else
    /// https://app.terraform.io]
    #[arg(long, env = "TFE_ADDRESS", value_name = "URL")]
    pub address: Option<String>,

    /// Target organization [default: `organization:` in policies.yaml]
    #[arg(long, env = "TFE_ORGANIZATION", value_name = "ORG")]
    pub organization: Option<String>,

    /// Read the API token from this file (wins over TFE_TOKEN, TF_TOKEN_<host> and the
    /// Terraform credentials file)
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,

    /// Also trust the certificate authorities in this PEM file (for a private CA);
    /// SSL_CERT_FILE is honoured too
    #[arg(long, value_name = "PATH")]
    pub ca_cert: Option<PathBuf>,
}

/// The API token. Never printed: `Debug` shows `Token(***)` and there is no `Display`.
#[derive(Clone)]
pub struct Token(SecretString);

impl Token {
    /// Wraps a token. The text is not validated here; [`resolve`] does that for user input.
    pub fn new(token: impl Into<String>) -> Token {
        Token(SecretString::from(token.into()))
    }

    /// The token's text. Only the API client calls this, to build the `Authorization` header.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Where the token came from, so that a rejected token's message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `--token-file PATH`.
    File(PathBuf),
    /// The `TFE_TOKEN` environment variable.
    TfeTokenEnv,
    /// A `TF_TOKEN_<host>` environment variable (its name).
    HostTokenEnv(String),
    /// The Terraform CLI credentials file, under the given key.
    CredentialsFile { path: PathBuf, key: String },
    /// Built by code (tests, examples), not resolved from user input.
    Explicit,
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::File(p) => write!(f, "--token-file {}", p.display()),
            TokenSource::TfeTokenEnv => f.write_str("TFE_TOKEN"),
            TokenSource::HostTokenEnv(var) => f.write_str(var),
            TokenSource::CredentialsFile { path, key } => {
                write!(f, "{} (credentials for {key:?})", path.display())
            }
            TokenSource::Explicit => f.write_str("the caller"),
        }
    }
}

/// Everything needed to talk to the service, validated.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The API origin (scheme, host, port; path `/`). Requests go to `address/api/v2/...`.
    pub address: Url,
    pub organization: String,
    pub token: Token,
    /// Where the token came from (named in the message when the service rejects it).
    pub token_source: TokenSource,
    /// Extra trusted roots: `--ca-cert`, then `SSL_CERT_FILE`. Read when the client is built.
    pub ca_certs: Vec<PathBuf>,
}

impl Connection {
    /// A connection built by code rather than from user input (tests, examples, benchmarks).
    /// The address must be an origin such as `http://127.0.0.1:8080`.
    pub fn new(address: Url, organization: impl Into<String>, token: Token) -> Connection {
        Connection {
            address,
            organization: organization.into(),
            token,
            token_source: TokenSource::Explicit,
            ca_certs: Vec::new(),
        }
    }
}

/// Why the connection settings are unusable. Each message names the setting to fix; none
/// carries the token.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid address {address:?} (from {origin}): {reason}")]
    InvalidAddress {
        address: String,
        origin: &'static str,
        reason: String,
    },
    #[error(
        "refusing plain http to {address}: the token would cross the network unencrypted; \
         use https:// (plain http is accepted only for loopback addresses such as \
         http://127.0.0.1:8080)"
    )]
    InsecureAddress { address: String },
    #[error(
        "no organization given: pass --organization ORG, set TFE_ORGANIZATION, or add \
         `organization: ORG` to policies.yaml"
    )]
    NoOrganization,
    #[error("the organization name from {origin} is empty")]
    EmptyOrganization { origin: &'static str },
    #[error(
        "no API token found for {host}: pass --token-file PATH, set TFE_TOKEN or {host_var}, \
         or run `terraform login {host}` (which writes {credentials}){}",
        empty_note(empty_vars)
    )]
    NoToken {
        host: String,
        host_var: String,
        credentials: String,
        /// Token variables that are set to the empty string, which counts as unset.
        empty_vars: Vec<String>,
    },
    #[error("the API token from {from} is empty")]
    EmptyToken { from: TokenSource },
    #[error(
        "the API token from {from} contains whitespace or control characters inside it; \
         check that it holds exactly one token"
    )]
    MalformedToken { from: TokenSource },
    #[error("cannot read the token file {path}: {error}")]
    TokenFile {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    #[error("cannot use the Terraform credentials file {path}: {reason}")]
    CredentialsFile { path: PathBuf, reason: String },
}

/// "; note: TFE_TOKEN is set but empty (an empty variable counts as unset)", or nothing.
fn empty_note(vars: &[String]) -> String {
    if vars.is_empty() {
        return String::new();
    }
    let listed: Vec<String> = vars
        .iter()
        .map(|v| format!("{v} is set but empty"))
        .collect();
    format!(
        "; note: {} (an empty variable counts as unset)",
        listed.join(", ")
    )
}

/// Resolves the connection settings.
///
/// * address: `args.address` (`--address`/`TFE_ADDRESS`), else `https://$TFE_HOSTNAME`, else
///   `https://app.terraform.io`. Plain `http://` only for loopback.
/// * organization: `args.organization` (`--organization`/`TFE_ORGANIZATION`), else
///   `manifest_org`, else an error.
/// * token: `--token-file`, `TFE_TOKEN`, `TF_TOKEN_<host>`, then
///   `<home>/.terraform.d/credentials.tfrc.json`.
/// * CA certificates: `--ca-cert`, then `SSL_CERT_FILE`.
///
/// `env` looks up environment variables (pass `|k| std::env::var(k).ok()` in production);
/// `TFE_ADDRESS` and `TFE_ORGANIZATION` are consulted through it too when the arguments were
/// not parsed by clap. `home` is the user's home directory, if known.
pub fn resolve(
    args: &ConnectionArgs,
    manifest_org: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Connection, ConfigError> {
    // A variable set to the empty string (a CI secret that is not defined, `export X=`) is
    // unset, as most tools treat it: it neither wins over the next source nor fails.
    let raw_env = env;
    let env = &|k: &str| raw_env(k).filter(|v| !v.is_empty());
    let address = resolve_address(args, env)?;
    let organization = resolve_organization(args, manifest_org, env)?;
    let (token, token_source) = resolve_token(args, &address, env, home).map_err(|e| match e {
        ConfigError::NoToken {
            host,
            host_var,
            credentials,
            ..
        } => {
            let empty_vars = ["TFE_TOKEN", host_var.as_str()]
                .into_iter()
                .filter(|k| raw_env(k).is_some_and(|v| v.is_empty()))
                .map(str::to_owned)
                .collect();
            ConfigError::NoToken {
                host,
                host_var,
                credentials,
                empty_vars,
            }
        }
        e => e,
    })?;
    let mut ca_certs = Vec::new();
    ca_certs.extend(args.ca_cert.clone());
    ca_certs.extend(
        env("SSL_CERT_FILE")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from),
    );
    Ok(Connection {
        address,
        organization,
        token,
        token_source,
        ca_certs,
    })
}

/// [`resolve`] with the process environment and the user's home directory.
pub fn resolve_from_process(
    args: &ConnectionArgs,
    manifest_org: Option<&str>,
) -> Result<Connection, ConfigError> {
    let home = std::env::home_dir();
    resolve(
        args,
        manifest_org,
        &|k| std::env::var(k).ok(),
        home.as_deref(),
    )
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

fn resolve_address(
    args: &ConnectionArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Url, ConfigError> {
    let (raw, origin) = if let Some(a) = non_empty(args.address.clone()) {
        (a, "--address/TFE_ADDRESS")
    } else if let Some(a) = non_empty(env("TFE_ADDRESS")) {
        (a, "TFE_ADDRESS")
    } else if let Some(h) = non_empty(env("TFE_HOSTNAME")) {
        let host = h.trim();
        if host.contains("://") {
            // TFE_HOSTNAME is a host name (as the tfe provider and go-tfe read it); a URL here
            // would become https://https://..., rejected for a reason that misleads.
            let bare = host.split_once("://").map_or(host, |(_, rest)| rest);
            let bare = bare.trim_end_matches('/');
            return Err(ConfigError::InvalidAddress {
                address: host.to_owned(),
                origin: "TFE_HOSTNAME",
                reason: format!(
                    "TFE_HOSTNAME takes a host name such as {bare}, not a URL; drop the \
                     scheme (TFE_HOSTNAME={bare}), or set TFE_ADDRESS={host} instead"
                ),
            });
        }
        (format!("https://{host}"), "TFE_HOSTNAME")
    } else {
        (DEFAULT_ADDRESS.to_owned(), "the default")
    };
    parse_address(raw.trim(), origin)
}

/// Parses and checks an API origin. Public for the callers that take an address from
/// elsewhere (examples, benchmarks).
pub fn parse_address(raw: &str, origin: &'static str) -> Result<Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidAddress {
        address: raw.to_owned(),
        origin,
        reason: reason.to_owned(),
    };
    if !raw.contains("://") {
        let looks_like_a_host = !raw.is_empty()
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
        return Err(invalid(&if looks_like_a_host {
            format!(
                "give a full URL with its scheme, such as --address https://{raw} (or set \
                 TFE_HOSTNAME={raw}, which means the same)"
            )
        } else {
            "give a full URL with its scheme, such as https://tfe.example.com".to_owned()
        }));
    }
    let url = Url::parse(raw).map_err(|e| invalid(&e.to_string()))?;
    match url.scheme() {
        "https" | "http" => {}
        _ => {
            return Err(invalid(
                "the scheme must be https:// (or http:// for a loopback address)",
            ));
        }
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(invalid("the URL has no host"));
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials do not belong in the address; use --token-file or TFE_TOKEN",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("the address takes no query or fragment"));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(
            "give the origin only (such as https://tfe.example.com), without a path: \
             requests go to <address>/api/v2/...",
        ));
    }
    if url.scheme() == "http" && !is_loopback(host) {
        return Err(ConfigError::InsecureAddress {
            address: raw.to_owned(),
        });
    }
    Ok(url)
}

/// Plain http is safe only when the bytes never leave the machine.
/// `host` is as [`Url::host_str`] gives it: IPv6 literals in brackets.
pub fn is_loopback(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

fn resolve_organization(
    args: &ConnectionArgs,
    manifest_org: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let (raw, origin) = if let Some(o) = args.organization.clone() {
        (o, "--organization/TFE_ORGANIZATION")
    } else if let Some(o) = env("TFE_ORGANIZATION") {
        (o, "TFE_ORGANIZATION")
    } else if let Some(o) = manifest_org {
        (o.to_owned(), "policies.yaml")
    } else {
        return Err(ConfigError::NoOrganization);
    };
    let org = raw.trim();
    if org.is_empty() {
        return Err(ConfigError::EmptyOrganization { origin });
    }
    Ok(org.to_owned())
}

/// `TF_TOKEN_<host>` as Terraform spells it: dots become `_` and dashes `__`. `None` for hosts
/// that cannot be spelled so (IPv6 literals).
pub fn host_token_var(host: &str) -> Option<String> {
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return None;
    }
    let mut var = String::with_capacity(9 + host.len() + 4);
    var.push_str("TF_TOKEN_");
    for c in host.chars() {
        match c {
            '.' => var.push('_'),
            '-' => var.push_str("__"),
            c => var.push(c),
        }
    }
    Some(var)
}

/// The key Terraform writes in `credentials.tfrc.json`: the host, plus `:port` when the
/// address has a non-default port.
pub fn credentials_key(address: &Url) -> String {
    let host = address.host_str().unwrap_or_default();
    match address.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn resolve_token(
    args: &ConnectionArgs,
    address: &Url,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<(Token, TokenSource), ConfigError> {
    if let Some(path) = &args.token_file {
        let source = TokenSource::File(path.clone());
        let text = read_small_file(path).map_err(|error| ConfigError::TokenFile {
            path: path.clone(),
            error,
        })?;
        warn_if_readable_by_others(path, "token file");
        return checked_token(text, source);
    }
    if let Some(t) = env("TFE_TOKEN") {
        return checked_token(t, TokenSource::TfeTokenEnv);
    }
    let host = address.host_str().unwrap_or_default();
    let host_var = host_token_var(host);
    if let Some(var) = &host_var
        && let Some(t) = env(var)
    {
        return checked_token(t, TokenSource::HostTokenEnv(var.clone()));
    }
    let key = credentials_key(address);
    let credentials = home.map(|h| h.join(CREDENTIALS_FILE));
    if let Some(path) = &credentials
        && let Some(t) = token_from_credentials_file(path, &key)?
    {
        warn_if_readable_by_others(path, "Terraform credentials file");
        return checked_token(
            t,
            TokenSource::CredentialsFile {
                path: path.clone(),
                key,
            },
        );
    }
    Err(ConfigError::NoToken {
        host: key,
        host_var: host_var.unwrap_or_else(|| "TF_TOKEN_<host>".to_owned()),
        credentials: credentials
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("~/{CREDENTIALS_FILE}")),
        empty_vars: Vec::new(),
    })
}

/// Trims the surrounding whitespace (files end in a newline) and refuses what cannot be a
/// token. The error names the source, never the text.
fn checked_token(text: String, source: TokenSource) -> Result<(Token, TokenSource), ConfigError> {
    let token = Token::new(text);
    let trimmed = token.expose().trim();
    if trimmed.is_empty() {
        return Err(ConfigError::EmptyToken { from: source });
    }
    // A header value must be visible ASCII; anything else is a paste accident (two tokens,
    // a stray quote of a multi-line file) that the service would reject anyway.
    if !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError::MalformedToken { from: source });
    }
    if trimmed.len() == token.expose().len() {
        return Ok((token, source));
    }
    Ok((Token::new(trimmed.to_owned()), source))
}

fn read_small_file(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    let mut limited = file.take(MAX_TOKEN_FILE_BYTES + 1);
    limited.read_to_string(&mut text)?;
    if text.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_TOKEN_FILE_BYTES} bytes: not a token file"),
        ));
    }
    Ok(text)
}

/// Reads `{"credentials": {"<key>": {"token": "..."}}}`. A missing file or key is `None`; a
/// file that exists but cannot be read or parsed is an error, since `terraform login` wrote it
/// and the user expects it to count. Parsed as a `Value` and walked by hand so that no serde
/// message can quote the token.
fn token_from_credentials_file(path: &Path, key: &str) -> Result<Option<String>, ConfigError> {
    let fail = |reason: String| ConfigError::CredentialsFile {
        path: path.to_owned(),
        reason,
    };
    let text = match read_small_file(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        fail(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Some(entry) = value.get("credentials").and_then(|c| c.get(key)) else {
        return Ok(None);
    };
    match entry.get("token") {
        Some(serde_json::Value::String(t)) => Ok(Some(t.clone())),
        Some(_) => Err(fail(format!("credentials.{key:?}.token is not a string"))),
        None => Err(fail(format!("credentials.{key:?} has no \"token\""))),
    }
}

/// Other users who can read the file can act as the token's owner. The group bits count
/// unless the file's group is this process's own: a Kubernetes Secret mounted for a non-root
/// pod is `0440` with the pod's `fsGroup`, and a user's private group holds only that user.
fn warn_if_readable_by_others(path: &Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // Permission bits that let someone else read: the group's count unless it is ours.
        let others = |meta: &std::fs::Metadata| {
            // SAFETY: getegid(2) cannot fail and touches no memory.
            let own_group = meta.gid() == unsafe { libc::getegid() };
            if own_group { 0o007 } else { 0o077 }
        };
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & others(&meta) != 0
        {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the {what} {} is accessible to other users; restrict it with `chmod 600 {}`",
                path.display(),
                path.display(),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "s3cr3t.atlasv1.abcdefghijklmnop";

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn args() -> ConnectionArgs {
        ConnectionArgs {
            organization: Some("my-org".into()),
            ..ConnectionArgs::default()
        }
    }

    fn resolve_with(
        args: &ConnectionArgs,
        env: &[(&str, &str)],
        home: Option<&Path>,
    ) -> Result<Connection, ConfigError> {
        resolve(args, None, &env_of(env), home)
    }

    fn write_private(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    #[test]
    fn default_address_is_hcp_terraform_and_tfe_hostname_overrides_it() {
        let c = resolve_with(&args(), &[("TFE_TOKEN", SECRET)], None).unwrap();
        assert_eq!(c.address.as_str(), "https://app.terraform.io/");
        let c = resolve_with(
            &args(),
            &[("TFE_TOKEN", SECRET), ("TFE_HOSTNAME", "tfe.example.com")],
            None,
        )
        .unwrap();
        assert_eq!(c.address.as_str(), "https://tfe.example.com/");
        let mut a = args();
        a.address = Some("https://flag.example.com".into());
        let c = resolve_with(
            &a,
            &[("TFE_TOKEN", SECRET), ("TFE_HOSTNAME", "tfe.example.com")],
            None,
        )
        .unwrap();
        assert_eq!(c.address.as_str(), "https://flag.example.com/");
    }

    #[test]
    fn plain_http_is_accepted_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "http://[::1]:9000/",
            "http://localhost:8080",
            "https://tfe.example.com",
            "https://tfe.example.com:8443/",
        ] {
            assert!(parse_address(ok, "test").is_ok(), "{ok} should be accepted");
        }
        for bad in [
            "http://tfe.example.com",
            "http://10.0.0.1",
            "http://[fe80::1]",
            "http://localhost.evil.com",
        ] {
            let err = parse_address(bad, "test").unwrap_err();
            assert!(
                matches!(err, ConfigError::InsecureAddress { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains("use https://"), "{err}");
        }
    }

    #[test]
    fn malformed_addresses_say_what_to_write_instead() {
        let cases = [
            ("tfe.example.com", "with its scheme"),
            ("ftp://tfe.example.com", "scheme must be https"),
            ("https://tfe.example.com/api/v2", "without a path"),
            (
                "https://user:pw@tfe.example.com",
                "credentials do not belong",
            ),
            ("https://tfe.example.com/?x=1", "no query"),
        ];
        for (raw, want) in cases {
            let err = parse_address(raw, "--address/TFE_ADDRESS").unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(want), "{raw}: {msg}");
            assert!(msg.contains("--address/TFE_ADDRESS"), "{raw}: {msg}");
        }
    }

    /// Audit: TFE_HOSTNAME holds a host name; given a URL it became
    /// `https://https://tfe.example.com`, rejected as "an address with a path".
    #[test]
    fn tfe_hostname_with_a_scheme_says_it_takes_a_host_name() {
        for raw in ["https://tfe.example.com", "http://127.0.0.1:8080"] {
            let msg = resolve_with(
                &args(),
                &[("TFE_TOKEN", SECRET), ("TFE_HOSTNAME", raw)],
                None,
            )
            .unwrap_err()
            .to_string();
            for want in ["TFE_HOSTNAME", "host name", "TFE_ADDRESS", raw] {
                assert!(msg.contains(want), "{raw}: missing {want:?} in {msg}");
            }
            assert!(!msg.contains("https://https://"), "{msg}");
        }
        // A bare host name, with or without a port, is what it takes.
        for (host, want) in [
            ("tfe.example.com", "https://tfe.example.com/"),
            ("tfe.example.com:8443", "https://tfe.example.com:8443/"),
        ] {
            let c = resolve_with(
                &args(),
                &[("TFE_TOKEN", SECRET), ("TFE_HOSTNAME", host)],
                None,
            )
            .unwrap();
            assert_eq!(c.address.as_str(), want);
        }
    }

    /// Audit: a bare host name in --address/TFE_ADDRESS was refused with a generic example;
    /// the message now spells the address to write.
    #[test]
    fn a_bare_host_name_as_address_suggests_the_url() {
        let msg = parse_address("tfe.example.com", "--address/TFE_ADDRESS")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--address https://tfe.example.com"), "{msg}");
        assert!(msg.contains("TFE_HOSTNAME=tfe.example.com"), "{msg}");
    }

    /// Audit: an empty variable is unset (a CI secret that is not defined), not an empty value.
    #[test]
    fn empty_environment_variables_are_unset() {
        let c = resolve_with(
            &ConnectionArgs::default(),
            &[
                ("TFE_TOKEN", ""),
                ("TF_TOKEN_app_terraform_io", SECRET),
                ("TFE_ORGANIZATION", ""),
                ("TFE_HOSTNAME", ""),
                ("TFE_ADDRESS", ""),
            ],
            None,
        );
        // No organization anywhere: the error is the missing one, not an empty one.
        assert!(matches!(c, Err(ConfigError::NoOrganization)), "{c:?}");
        let env = env_of(&[
            ("TFE_TOKEN", ""),
            ("TF_TOKEN_app_terraform_io", SECRET),
            ("TFE_ORGANIZATION", ""),
        ]);
        let c = resolve(
            &ConnectionArgs::default(),
            Some("from-manifest"),
            &env,
            None,
        )
        .unwrap();
        assert_eq!(c.organization, "from-manifest");
        assert_eq!(c.token.expose(), SECRET);
        assert_eq!(
            c.token_source,
            TokenSource::HostTokenEnv("TF_TOKEN_app_terraform_io".into())
        );

        // Every token variable empty: "no token", naming the empty ones.
        let dir = tempfile::tempdir().unwrap();
        let msg = resolve_with(
            &args(),
            &[("TFE_TOKEN", ""), ("TF_TOKEN_app_terraform_io", "")],
            Some(dir.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("no API token found"), "{msg}");
        assert!(
            msg.contains("TFE_TOKEN is set but empty")
                && msg.contains("TF_TOKEN_app_terraform_io is set but empty"),
            "{msg}"
        );
    }

    #[test]
    fn organization_flag_wins_over_manifest_and_missing_is_a_clear_error() {
        let env = env_of(&[("TFE_TOKEN", SECRET)]);
        let c = resolve(&args(), Some("from-manifest"), &env, None).unwrap();
        assert_eq!(c.organization, "my-org");
        let c = resolve(
            &ConnectionArgs::default(),
            Some("from-manifest"),
            &env,
            None,
        )
        .unwrap();
        assert_eq!(c.organization, "from-manifest");
        let env2 = env_of(&[("TFE_TOKEN", SECRET), ("TFE_ORGANIZATION", "from-env")]);
        let c = resolve(
            &ConnectionArgs::default(),
            Some("from-manifest"),
            &env2,
            None,
        )
        .unwrap();
        assert_eq!(c.organization, "from-env");
        let err = resolve(&ConnectionArgs::default(), None, &env, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--organization"), "{msg}");
        assert!(msg.contains("TFE_ORGANIZATION"), "{msg}");
        assert!(msg.contains("policies.yaml"), "{msg}");
    }

    #[test]
    fn token_precedence_is_file_then_tfe_token_then_host_var_then_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        write_private(
            &home.join(CREDENTIALS_FILE),
            r#"{"credentials": {"tfe.example.com": {"token": "from-credentials"}}}"#,
        );
        let file = dir.path().join("token");
        write_private(&file, "from-file\n");
        let mut a = args();
        a.address = Some("https://tfe.example.com".into());
        let full_env = [
            ("TFE_TOKEN", "from-tfe-token"),
            ("TF_TOKEN_tfe_example_com", "from-host-var"),
        ];

        let mut with_file = a.clone();
        with_file.token_file = Some(file.clone());
        let c = resolve_with(&with_file, &full_env, Some(home)).unwrap();
        assert_eq!(c.token.expose(), "from-file", "file wins and is trimmed");
        assert_eq!(c.token_source, TokenSource::File(file));

        let c = resolve_with(&a, &full_env, Some(home)).unwrap();
        assert_eq!(c.token.expose(), "from-tfe-token");
        assert_eq!(c.token_source, TokenSource::TfeTokenEnv);

        let c = resolve_with(&a, &full_env[1..], Some(home)).unwrap();
        assert_eq!(c.token.expose(), "from-host-var");
        assert_eq!(
            c.token_source,
            TokenSource::HostTokenEnv("TF_TOKEN_tfe_example_com".into())
        );

        let c = resolve_with(&a, &[], Some(home)).unwrap();
        assert_eq!(c.token.expose(), "from-credentials");
        assert!(matches!(
            c.token_source,
            TokenSource::CredentialsFile { .. }
        ));
    }

    #[test]
    fn host_token_var_is_spelled_as_terraform_spells_it() {
        assert_eq!(
            host_token_var("app.terraform.io").as_deref(),
            Some("TF_TOKEN_app_terraform_io")
        );
        assert_eq!(
            host_token_var("my-tfe.example.com").as_deref(),
            Some("TF_TOKEN_my__tfe_example_com")
        );
        assert_eq!(host_token_var("[::1]"), None);
    }

    #[test]
    fn credentials_key_carries_a_non_default_port() {
        let dir = tempfile::tempdir().unwrap();
        write_private(
            &dir.path().join(CREDENTIALS_FILE),
            r#"{"credentials": {"localhost": {"token": "no-port"},
                                "localhost:8443": {"token": "with-port"}}}"#,
        );
        let mut a = args();
        a.address = Some("https://localhost:8443".into());
        let c = resolve_with(&a, &[], Some(dir.path())).unwrap();
        assert_eq!(c.token.expose(), "with-port");
        a.address = Some("https://localhost:443".into());
        let c = resolve_with(&a, &[], Some(dir.path())).unwrap();
        assert_eq!(c.token.expose(), "no-port");
    }

    #[test]
    fn no_token_anywhere_names_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = args();
        a.address = Some("https://tfe.example.com".into());
        let msg = resolve_with(&a, &[], Some(dir.path()))
            .unwrap_err()
            .to_string();
        for want in [
            "--token-file",
            "TFE_TOKEN",
            "TF_TOKEN_tfe_example_com",
            "terraform login tfe.example.com",
            "credentials.tfrc.json",
        ] {
            assert!(msg.contains(want), "missing {want:?} in {msg}");
        }
    }

    #[test]
    fn empty_and_malformed_tokens_are_errors_naming_the_source_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        write_private(&file, "  \n");
        let mut a = args();
        a.token_file = Some(file.clone());
        let msg = resolve_with(&a, &[], None).unwrap_err().to_string();
        assert!(msg.contains("empty"), "{msg}");
        assert!(msg.contains(&file.display().to_string()), "{msg}");

        // An empty TFE_TOKEN is unset (`empty_environment_variables_are_unset`); one that is
        // only blanks is a mistake worth naming.
        let msg = resolve_with(&args(), &[("TFE_TOKEN", " \n")], None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("TFE_TOKEN is empty"), "{msg}");

        let two = format!("{SECRET}\n{SECRET}");
        let msg = resolve_with(&args(), &[("TFE_TOKEN", &two)], None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("TFE_TOKEN"), "{msg}");
        assert!(!msg.contains(SECRET), "{msg}");
    }

    #[test]
    fn a_broken_credentials_file_is_an_error_that_never_quotes_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE);
        for text in [
            format!(r#"{{"credentials": {{"app.terraform.io": "{SECRET}"}}}}"#),
            format!(r#"{{"credentials": {{"app.terraform.io": {{"token": ["{SECRET}"]}}}}}}"#),
            format!(r#"{{"credentials": {{"app.terraform.io": {{"token": "{SECRET}""#),
        ] {
            write_private(&path, &text);
            let err = resolve_with(&args(), &[], Some(dir.path())).unwrap_err();
            let msg = format!("{err} {err:?}");
            assert!(msg.contains("credentials.tfrc.json"), "{msg}");
            assert!(!msg.contains(SECRET), "{msg}");
        }
    }

    #[test]
    fn a_missing_token_file_is_an_error_naming_it() {
        let mut a = args();
        a.token_file = Some(PathBuf::from("/nonexistent/token"));
        let msg = resolve_with(&a, &[("TFE_TOKEN", SECRET)], None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/nonexistent/token"), "{msg}");
    }

    #[test]
    fn ca_certs_come_from_the_flag_and_ssl_cert_file() {
        let mut a = args();
        a.ca_cert = Some(PathBuf::from("/etc/corp-ca.pem"));
        let c = resolve_with(
            &a,
            &[
                ("TFE_TOKEN", SECRET),
                ("SSL_CERT_FILE", "/etc/ssl/bundle.pem"),
            ],
            None,
        )
        .unwrap();
        assert_eq!(
            c.ca_certs,
            vec![
                PathBuf::from("/etc/corp-ca.pem"),
                PathBuf::from("/etc/ssl/bundle.pem")
            ]
        );
    }

    #[test]
    fn debug_of_token_and_connection_never_shows_the_token() {
        let c = resolve_with(&args(), &[("TFE_TOKEN", SECRET)], None).unwrap();
        assert_eq!(format!("{:?}", c.token), "Token(***)");
        let debug = format!("{c:?} {c:#?} {:?}", c.token_source);
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(!debug.contains("atlasv1"), "{debug}");
    }

    /// Collects what tracing writes while `f` runs.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_readable_by_others_is_used_with_a_warning_naming_the_file() {
        // Used, because refusing would break CI systems that mount secrets 0644; warned about,
        // because other users of the machine can act as the token's owner.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, SECRET).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut a = args();
        a.token_file = Some(file.clone());
        let (c, log) = logged(|| resolve_with(&a, &[], None).unwrap());
        assert_eq!(c.token.expose(), SECRET);
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains(&file.display().to_string()), "{log}");
        assert!(log.contains("chmod 600"), "{log}");
        assert!(!log.contains(SECRET), "{log}");

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (_, log) = logged(|| resolve_with(&a, &[], None).unwrap());
        assert!(
            !log.contains("WARN"),
            "a private file is not warned about: {log}"
        );
    }
}
