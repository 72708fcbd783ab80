//! Certificates for a run, made with rcgen: a CA, a server certificate
//! (SANs localhost, 127.0.0.1, ::1), a client certificate, and a second,
//! unrelated CA with its own client certificate for the negative cases; an
//! intermediate CA (signed by the CA) with a server and a client certificate
//! of its own, each written with the intermediate after it (a chain), and a
//! CA bundle (the unrelated CA, then the CA) for the chain cases.
//! Nothing here is ever checked in: files go to the run's own folder.
use crate::model::tls::KeyType;
use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// Paths of a run's certificate files (all PEM).
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing the server trusts or presents.
    pub other_ca: PathBuf,
    /// A client certificate signed by `other_ca`.
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
    /// A server certificate from the trusted CA that expired long ago.
    pub expired_server_cert: PathBuf,
    pub expired_server_key: PathBuf,
    /// A server certificate signed by an intermediate CA, followed in the
    /// file by that intermediate (which the CA signed).
    pub chained_server_cert: PathBuf,
    pub chained_server_key: PathBuf,
    /// A client certificate signed by the intermediate, followed by it.
    pub chained_client_cert: PathBuf,
    pub chained_client_key: PathBuf,
    /// Two CAs in one file: `other_ca` first, then `ca`.
    pub ca_bundle: PathBuf,
}

/// A fresh key pair of this type.
fn key_pair(kt: KeyType) -> anyhow::Result<KeyPair> {
    let alg = match kt {
        KeyType::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        KeyType::EcP521 => &rcgen::PKCS_ECDSA_P521_SHA512,
        KeyType::Rsa2048 => {
            let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|e| anyhow::anyhow!("RSA key generation: {e}"))?;
            let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&key)
                .map_err(|e| anyhow::anyhow!("RSA key encoding: {e}"))?;
            return Ok(KeyPair::try_from(der.as_ref())?);
        }
    };
    Ok(KeyPair::generate_for(alg)?)
}

fn ca_params(name: &str, constraints: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn ca(name: &str, kt: KeyType) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let params = ca_params(name, BasicConstraints::Unconstrained);
    Ok(CertifiedIssuer::self_signed(params, key_pair(kt)?)?)
}

/// A CA that `root` signed and that signs only leaves.
fn intermediate(
    name: &str,
    root: &CertifiedIssuer<'static, KeyPair>,
    kt: KeyType,
) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let params = ca_params(name, BasicConstraints::Constrained(0));
    Ok(CertifiedIssuer::signed_by(params, key_pair(kt)?, root)?)
}

fn leaf(
    name: &str,
    sans: &[&str],
    server: bool,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    kt: KeyType,
) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    leaf_with(name, sans, server, issuer, kt, |_| {})
}

fn leaf_with(
    name: &str,
    sans: &[&str],
    server: bool,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    kt: KeyType,
    tweak: impl FnOnce(&mut CertificateParams),
) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
    let key = key_pair(kt)?;
    let mut params = CertificateParams::default();
    // rcgen turns IP-looking names into IP SANs only when asked.
    params.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName((*s).try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    tweak(&mut params);
    let cert = params.signed_by(&key, issuer)?;
    Ok((cert, key))
}

impl CertFiles {
    /// Where a set of certificate files lives in `dir` (`generate` writes them).
    pub fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            other_client_cert: dir.join("other-client.pem"),
            other_client_key: dir.join("other-client.key"),
            expired_server_cert: dir.join("expired-server.pem"),
            expired_server_key: dir.join("expired-server.key"),
            chained_server_cert: dir.join("chained-server.pem"),
            chained_server_key: dir.join("chained-server.key"),
            chained_client_cert: dir.join("chained-client.pem"),
            chained_client_key: dir.join("chained-client.key"),
            ca_bundle: dir.join("ca-bundle.pem"),
        }
    }
}

/// Writes a fresh set of certificates into `dir` (created if needed).
pub fn generate(dir: &Path, kt: KeyType) -> anyhow::Result<CertFiles> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let ca_cert = ca("stock-matrix test CA", kt)?;
    let (server, server_key) = leaf("localhost", &["localhost", "127.0.0.1", "::1"], true, &ca_cert, kt)?;
    let (client, client_key) = leaf(
        "stock-matrix client",
        &["client.stock-matrix.test"],
        false,
        &ca_cert,
        kt,
    )?;
    let other_cert = ca("stock-matrix untrusted CA", kt)?;
    let (other_client, other_client_key) = leaf("stranger", &["stranger.stock-matrix.test"], false, &other_cert, kt)?;
    let (expired, expired_key) = leaf_with(
        "localhost",
        &["localhost", "127.0.0.1", "::1"],
        true,
        &ca_cert,
        kt,
        |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        },
    )?;
    let middle = intermediate("stock-matrix intermediate CA", &ca_cert, kt)?;
    let (chained, chained_key) = leaf("localhost", &["localhost", "127.0.0.1", "::1"], true, &middle, kt)?;
    let (chained_client, chained_client_key) = leaf(
        "stock-matrix chained client",
        &["chained-client.stock-matrix.test"],
        false,
        &middle,
        kt,
    )?;

    let files = CertFiles::in_dir(dir);
    let write = |path: &Path, pem: String| {
        std::fs::write(path, pem).with_context(|| format!("failed to write {}", path.display()))
    };
    write(&files.ca, ca_cert.pem())?;
    write(&files.server_cert, server.pem())?;
    write(&files.server_key, server_key.serialize_pem())?;
    write(&files.client_cert, client.pem())?;
    write(&files.client_key, client_key.serialize_pem())?;
    write(&files.other_ca, other_cert.pem())?;
    write(&files.other_client_cert, other_client.pem())?;
    write(&files.other_client_key, other_client_key.serialize_pem())?;
    write(&files.expired_server_cert, expired.pem())?;
    write(&files.expired_server_key, expired_key.serialize_pem())?;
    write(&files.chained_server_cert, chained.pem() + &middle.pem())?;
    write(&files.chained_server_key, chained_key.serialize_pem())?;
    write(&files.chained_client_cert, chained_client.pem() + &middle.pem())?;
    write(&files.chained_client_key, chained_client_key.serialize_pem())?;
    write(&files.ca_bundle, other_cert.pem() + &ca_cert.pem())?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_every_file_as_pem() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), KeyType::EcP256).unwrap();
        for kt in KeyType::ALL {
            generate(&dir.path().join(kt.as_str()), kt).unwrap_or_else(|e| panic!("{}: {e:#}", kt.as_str()));
        }
        for p in [&files.ca, &files.server_cert, &files.client_cert, &files.other_ca] {
            assert!(std::fs::read_to_string(p)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----"));
        }
        assert!(std::fs::read_to_string(&files.server_key)
            .unwrap()
            .contains("PRIVATE KEY"));
        let count = |p: &Path| std::fs::read_to_string(p).unwrap().matches("BEGIN CERTIFICATE").count();
        for p in [&files.chained_server_cert, &files.chained_client_cert, &files.ca_bundle] {
            assert_eq!(count(p), 2, "{}", p.display());
        }
    }
}
