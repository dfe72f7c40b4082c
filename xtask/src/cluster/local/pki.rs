//! Certificates and keys for the local control plane, generated with rcgen:
//! a CA, the API server's serving certificate (127.0.0.1/localhost), an admin
//! client certificate (group `system:masters`) and the service-account key.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("generating {what}: {source}")]
    Rcgen { what: String, source: rcgen::Error },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The files written by [`generate`].
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

fn rc<T>(what: &str, r: Result<T, rcgen::Error>) -> Result<T, PkiError> {
    r.map_err(|source| PkiError::Rcgen {
        what: what.to_string(),
        source,
    })
}

/// Writes a fresh CA, serving and client certificates and the
/// service-account key pair into `dir`.
pub fn generate(dir: &Path) -> Result<Pki, PkiError> {
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let write = |name: &str, text: &str| -> Result<PathBuf, PkiError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| PkiError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };

    let mut ca = rc("CA params", CertificateParams::new(Vec::<String>::new()))?;
    ca.distinguished_name = dn("xtask-e2e-ca", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = rc("CA key", KeyPair::generate())?;
    let ca = rc("CA", CertifiedIssuer::self_signed(ca, ca_key))?;

    let mut server = rc(
        "server params",
        CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
        ]),
    )?;
    server.distinguished_name = dn("kube-apiserver", None);
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let server_key = rc("server key", KeyPair::generate())?;
    let server_cert = rc("server cert", server.signed_by(&server_key, &ca))?;

    let mut admin = rc("admin params", CertificateParams::new(Vec::<String>::new()))?;
    admin.distinguished_name = dn("xtask-admin", Some("system:masters"));
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    admin.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let admin_key = rc("admin key", KeyPair::generate())?;
    let admin_cert = rc("admin cert", admin.signed_by(&admin_key, &ca))?;

    // ECDSA P-256: kube-apiserver signs service-account tokens with ES256.
    let sa = rc("service-account key", KeyPair::generate())?;

    Ok(Pki {
        ca_cert: write("ca.crt", &ca.pem())?,
        server_cert: write("apiserver.crt", &server_cert.pem())?,
        server_key: write("apiserver.key", &server_key.serialize_pem())?,
        admin_cert: write("admin.crt", &admin_cert.pem())?,
        admin_key: write("admin.key", &admin_key.serialize_pem())?,
        sa_key: write("sa.key", &sa.serialize_pem())?,
        sa_pub: write("sa.pub", &sa.public_key_pem())?,
    })
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// A kubeconfig for `server` with the admin client certificate, paths inlined
/// as file references.
pub fn kubeconfig(pki: &Pki, server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: admin\n  user:\n    client-certificate: {cert}\n    client-key: {key}\ncontexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: admin\ncurrent-context: e2e\n",
        ca = pki.ca_cert.display(),
        cert = pki.admin_cert.display(),
        key = pki.admin_key.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_files() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path()).unwrap();
        let ca = std::fs::read_to_string(&pki.ca_cert).unwrap();
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(&pki.sa_key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        let public = std::fs::read_to_string(&pki.sa_pub).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let kc = kubeconfig(&pki, "https://127.0.0.1:6443");
        assert!(kc.contains("server: https://127.0.0.1:6443"));
    }
}
