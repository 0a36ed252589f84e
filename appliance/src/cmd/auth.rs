//! The state directory's credentials and TLS material, and the `mado auth`
//! commands. Files only; the rules are in `mado::auth`.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use mado::auth::{password, tokens};
use mado::config::Config;
use sha2::{Digest, Sha256};

/// The state directory: `state_dir` from the config (or `--state-dir`,
/// `$MADO_STATE_DIR`), else systemd's `$STATE_DIRECTORY`, else
/// `$XDG_DATA_HOME/mado`, else `~/.local/share/mado`.
pub fn state_dir(config: &Config) -> anyhow::Result<PathBuf> {
    if !config.state_dir.is_empty() {
        return Ok(PathBuf::from(&config.state_dir));
    }
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dirs) = env("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when there are several.
        let first = dirs.to_string_lossy().split(':').next().unwrap_or_default().to_owned();
        return Ok(PathBuf::from(first));
    }
    if let Some(data) = env("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        return Ok(data.join("mado"));
    }
    match env("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/mado")),
        None => bail!("no state directory: set state_dir in the config or $MADO_STATE_DIR"),
    }
}

/// This machine's host name, for the `Host` check and the certificate.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty() && h != "(none)")
}

/// The files of the state directory.
#[derive(Debug, Clone)]
pub struct Store {
    /// The directory.
    pub dir: PathBuf,
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no entropy: {e}"))?;
    Ok(bytes)
}

/// Writes `contents` to `path` readable by the owner only, through a
/// temporary file and a rename so a reader never sees half of it.
pub(super) fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

impl Store {
    /// The store in `dir`, created (mode 0700) when missing.
    pub fn open(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating the state directory {}", dir.display()))?;
        Ok(Self { dir })
    }

    /// The argon2id hash of the password.
    pub fn password_path(&self) -> PathBuf {
        self.dir.join("password")
    }

    /// A generated first password, until the owner sets one.
    pub fn initial_password_path(&self) -> PathBuf {
        self.dir.join("initial-password")
    }

    /// Login sessions (hashes of their ids), kept across restarts.
    pub fn sessions_path(&self) -> PathBuf {
        self.dir.join("sessions")
    }

    /// API token hashes.
    pub fn tokens_path(&self) -> PathBuf {
        self.dir.join("tokens")
    }

    /// The self-signed certificate and its key.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (self.dir.join("tls-cert.pem"), self.dir.join("tls-key.pem"))
    }

    /// The stored hash, or `None` when no password is set.
    pub fn password_hash(&self) -> anyhow::Result<Option<String>> {
        match std::fs::read_to_string(self.password_path()) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.password_path().display())),
        }
    }

    /// Sets the password: its hash replaces the old one, and the generated
    /// first password (if any) is deleted.
    pub fn set_password(&self, new: &str) -> anyhow::Result<()> {
        let hash = password::hash(new, &random()?)?;
        write_private(&self.password_path(), format!("{hash}\n").as_bytes())?;
        match std::fs::remove_file(self.initial_password_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", self.initial_password_path().display()))
            }
            _ => Ok(()),
        }
    }

    /// Creates a password when there is none: returns the generated one,
    /// which is also written (mode 0600) to `initial-password`.
    pub fn ensure_password(&self) -> anyhow::Result<Option<String>> {
        if self.password_hash()?.is_some() {
            return Ok(None);
        }
        // A first password someone left there (an image's first boot) counts.
        if let Ok(given) = std::fs::read_to_string(self.initial_password_path()) {
            let given = given.lines().next().unwrap_or_default();
            if password::check_new(given).is_ok() {
                let hash = password::hash(given, &random()?)?;
                write_private(&self.password_path(), format!("{hash}\n").as_bytes())?;
                return Ok(None);
            }
        }
        self.reset_password().map(Some)
    }

    /// Back to the first-boot state: a new generated password replaces the
    /// password (its hash; the password itself goes to `initial-password`,
    /// mode 0600, as on the first start), which ends every session (the
    /// login gate watches the hash file). API tokens stay. Returns it.
    pub fn reset_password(&self) -> anyhow::Result<String> {
        let generated = password::generate(&random()?);
        let hash = password::hash(&generated, &random()?)?;
        write_private(&self.initial_password_path(), format!("{generated}\n").as_bytes())?;
        write_private(&self.password_path(), format!("{hash}\n").as_bytes())?;
        Ok(generated)
    }

    /// The API tokens (none when the file is missing).
    pub fn tokens(&self) -> anyhow::Result<tokens::TokenList> {
        match std::fs::read_to_string(self.tokens_path()) {
            Ok(text) => {
                tokens::TokenList::parse(&text).with_context(|| format!("reading {}", self.tokens_path().display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.tokens_path().display())),
        }
    }

    fn save_tokens(&self, list: &tokens::TokenList) -> anyhow::Result<()> {
        write_private(&self.tokens_path(), list.to_text().as_bytes())
    }

    /// A new API token called `name`, stored hashed: the token (shown to
    /// its owner once) and the list now. A bad or taken name is a
    /// [`tokens::TokenError`] inside the error.
    pub fn create_token(&self, name: &str) -> anyhow::Result<(String, tokens::TokenList)> {
        let mut list = self.tokens()?;
        let token = tokens::generate(&random()?);
        list.add(name, &token)?;
        self.save_tokens(&list)?;
        Ok((token, list))
    }

    /// Removes the API token called `name`; the list now. An unknown name
    /// is a [`tokens::TokenError`] inside the error.
    pub fn revoke_token(&self, name: &str) -> anyhow::Result<tokens::TokenList> {
        let mut list = self.tokens()?;
        list.revoke(name)?;
        self.save_tokens(&list)?;
        Ok(list)
    }

    /// Creates the self-signed certificate when it is missing; returns its
    /// paths and whether it was made now.
    pub fn ensure_self_signed(&self) -> anyhow::Result<(PathBuf, PathBuf, bool)> {
        let (cert_path, key_path) = self.tls_paths();
        if cert_path.exists() && key_path.exists() {
            return Ok((cert_path, key_path, false));
        }
        let mut names = vec!["localhost".to_owned()];
        if let Some(host) = hostname() {
            names.push(format!("{host}.local"));
            names.push(host);
        }
        let mut addresses: Vec<std::net::IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        if let Ok(interfaces) = if_addrs::get_if_addrs() {
            addresses.extend(interfaces.iter().map(|i| i.ip()));
        }
        addresses.sort();
        addresses.dedup();
        names.extend(addresses.iter().map(|a| a.to_string()));
        let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("mado on {}", hostname().unwrap_or_default()),
        );
        let key = rcgen::KeyPair::generate().context("generating the TLS key")?;
        let cert = params.self_signed(&key).context("signing the certificate")?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
        Ok((cert_path, key_path, true))
    }
}

/// The TLS server configuration and the certificate's fingerprint.
pub struct Tls {
    /// For the acceptor.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the certificate, `AB:CD:...` as browsers show it.
    pub fingerprint: String,
    /// Where the certificate is.
    pub cert_path: PathBuf,
}

/// SHA-256 of `der`, as colon-separated upper-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate in use (configured, or the self-signed one when it
/// exists) and its fingerprint, without making one.
pub fn existing_fingerprint(config: &Config) -> Option<(PathBuf, String)> {
    use rustls_pki_types::pem::PemObject as _;
    let path = if config.tls.cert.is_empty() {
        state_dir(config).ok()?.join("tls-cert.pem")
    } else {
        PathBuf::from(&config.tls.cert)
    };
    let cert = rustls_pki_types::CertificateDer::pem_file_iter(&path)
        .ok()?
        .next()?
        .ok()?;
    Some((path.clone(), fingerprint(&cert)))
}

/// Loads the configured certificate, or the state directory's self-signed
/// one (made now if missing).
pub fn load_tls(config: &Config, store: &Store) -> anyhow::Result<Tls> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert_path, key_path) = if config.tls.cert.is_empty() {
        let (cert, key, created) = store.ensure_self_signed()?;
        if created {
            tracing::info!("made a self-signed TLS certificate: {}", cert.display());
        }
        (cert, key)
    } else {
        (PathBuf::from(&config.tls.cert), PathBuf::from(&config.tls.key))
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading the certificate {}: {e}", cert_path.display()))?;
    let Some(first) = certs.first() else {
        bail!("{} holds no certificate", cert_path.display());
    };
    let fingerprint = fingerprint(first);
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| anyhow::anyhow!("reading the TLS key {}: {e}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| format!("the certificate {} and key {}", cert_path.display(), key_path.display()))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(server),
        fingerprint,
        cert_path,
    })
}

/// `mado auth ...`.
pub enum AuthCommand {
    /// Create missing credentials and TLS material.
    Init,
    /// A new password from standard input.
    SetPassword,
    /// Back to the first-boot state: a new generated password.
    ResetPassword,
    /// A new API token, printed once.
    TokenCreate(String),
    /// Remove an API token.
    TokenRevoke(String),
    /// The tokens' names.
    TokenList,
}

/// Runs a `mado auth` command.
pub fn command(config: &Config, command: AuthCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open(state_dir(config)?)?;
    let dir = store.dir.display();
    match command {
        AuthCommand::Init => {
            match store.ensure_password()? {
                Some(generated) => println!(
                    "mado: generated the dashboard password: {generated}\n\
                     mado: (also in {}; change it with `mado auth set-password`)",
                    store.initial_password_path().display()
                ),
                None => println!("mado: a password is set ({dir}/password)"),
            }
            if config.tls.cert.is_empty() {
                let tls = load_tls(config, &store)?;
                println!(
                    "mado: TLS certificate {}, SHA-256 fingerprint {}",
                    tls.cert_path.display(),
                    tls.fingerprint
                );
            }
        }
        AuthCommand::SetPassword => {
            let mut input = String::new();
            std::io::stdin()
                .take(64 * 1024)
                .read_to_string(&mut input)
                .context("reading the new password from standard input")?;
            let new = input.lines().next().unwrap_or_default();
            store.set_password(new)?;
            println!("mado: password set ({dir}/password)");
        }
        AuthCommand::ResetPassword => {
            let generated = store.reset_password()?;
            println!(
                "mado: the dashboard password is reset to a generated one: {generated}\n\
                 mado: (also in {}; every session has ended; API tokens stay)",
                store.initial_password_path().display()
            );
        }
        AuthCommand::TokenCreate(name) => {
            let (token, _) = store.create_token(&name)?;
            println!("{token}");
            eprintln!(
                "mado: token {name:?} created; it is shown only now (send it as `Authorization: Bearer <token>`)"
            );
        }
        AuthCommand::TokenRevoke(name) => {
            store.revoke_token(&name)?;
            println!("mado: token {name:?} revoked");
        }
        AuthCommand::TokenList => {
            for name in store.tokens()?.names() {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
