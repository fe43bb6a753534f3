//! A throw-away self-signed certificate for the TLS tests, made with the
//! `openssl` command.

use std::process::Command;

/// A TLS acceptor for `localhost` and 127.0.0.1.
pub(crate) fn acceptor() -> native_tls::TlsAcceptor {
    let dir = std::env::temp_dir().join(format!("prodkit-netcfg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command (Debian package openssl) makes the test certificate");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let identity = native_tls::Identity::from_pkcs8(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    native_tls::TlsAcceptor::new(identity).unwrap()
}
