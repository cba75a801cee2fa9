//! Test certificates made with the `openssl` command line: a CA, a broker certificate it signs
//! (for 127.0.0.1 and localhost), and a second CA that signed nothing the broker shows.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct TestPki {
    _dir: tempfile::TempDir,
    /// The CA that signed the broker's certificate (PEM).
    pub ca: PathBuf,
    /// The broker's certificate (PEM) and its private key (PKCS#8 PEM).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A CA that did not sign the broker's certificate.
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line must be installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

impl TestPki {
    pub fn new() -> TestPki {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ca(d, "axion-test-ca");
        ca(d, "axion-other-ca");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "broker.key",
                "-out",
                "broker.csr",
            ],
        );
        std::fs::write(
            d.join("broker.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "broker.csr",
                "-CA",
                "axion-test-ca.pem",
                "-CAkey",
                "axion-test-ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "broker.ext",
                "-out",
                "broker.pem",
            ],
        );
        TestPki {
            ca: d.join("axion-test-ca.pem"),
            cert: d.join("broker.pem"),
            key: d.join("broker.key"),
            other_ca: d.join("axion-other-ca.pem"),
            _dir: dir,
        }
    }
}
