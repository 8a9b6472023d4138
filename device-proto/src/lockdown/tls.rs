//! The lockdown TLS session: the phone is the TLS **server** on the same socket the plaintext
//! `StartSession` reply went out on.
//!
//! - TLS 1.2 only, as real phones negotiate it; rustls echoes `renegotiation_info`, which
//!   Debian's libimobiledevice 1.3.0 on OpenSSL 3 requires.
//! - The server presents the DeviceCertificate of the host's pair record with the device key
//!   (all three clients accept it; UNCONFIRMED that iOS presents exactly this).
//! - A client certificate is requested but optional. When one is sent it must be, byte for
//!   byte, the RootCertificate or HostCertificate the host paired with. No X.509 path
//!   validation: the clients' certificates are self-signed, have empty names, CA:TRUE leaves
//!   and SHA-1 signatures, and phones accept all of them.
//! - [`RecordReader`] hands rustls one TLS record at a time, so that after `StopSession` the
//!   plaintext that follows the peer's close_notify is still in the socket, not in rustls.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::io::BoxIo;
use crate::state::TrustedHost;

/// First PEM block of `pem` as DER.
pub fn pem_to_der(pem: &[u8]) -> Option<Vec<u8>> {
    pem::parse(pem).ok().map(|p| p.into_contents())
}

/// Builds the server config for a session with `host`.
pub fn server_config(
    host: &TrustedHost,
    device_key_pkcs8: Vec<u8>,
    tls13: bool,
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let device_cert = pem_to_der(&host.device_certificate)
        .ok_or_else(|| anyhow::anyhow!("the stored DeviceCertificate is not PEM"))?;
    let key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            device_key_pkcs8,
        )))?;
    let certified = Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(device_cert)],
        key,
    ));
    let accepted = [&host.root_certificate, &host.host_certificate]
        .iter()
        .filter_map(|p| pem_to_der(p))
        .collect();
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let cfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(Arc::new(PairRecordVerifier { accepted, provider }))
        .with_cert_resolver(Arc::new(DeviceCert(certified)));
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct DeviceCert(Arc<CertifiedKey>);

impl ResolvesServerCert for DeviceCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Accepts exactly the certificates of the host's pair record.
#[derive(Debug)]
struct PairRecordVerifier {
    accepted: Vec<Vec<u8>>,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for PairRecordVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self
            .accepted
            .iter()
            .any(|c| c.as_slice() == end_entity.as_ref())
        {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The lockdown socket. In plaintext it passes reads straight through; while TLS is on it never
/// reads past the end of the current TLS record.
pub struct RecordReader {
    inner: BoxIo,
    records: bool,
    hdr: [u8; 5],
    hdr_have: usize,
    body_left: usize,
    scratch: Vec<u8>,
}

impl RecordReader {
    pub fn new(inner: BoxIo) -> Self {
        RecordReader {
            inner,
            records: false,
            hdr: [0; 5],
            hdr_have: 0,
            body_left: 0,
            scratch: vec![0; 16 * 1024 + 2048 + 5],
        }
    }

    /// Switches record-bounded reading on (TLS starting) or off (TLS torn down).
    pub fn set_records(&mut self, on: bool) {
        self.records = on;
        self.hdr_have = 0;
        self.body_left = 0;
    }
}

impl AsyncRead for RecordReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.records {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let limit = if this.hdr_have < 5 {
            5 - this.hdr_have
        } else {
            this.body_left
        }
        .min(buf.remaining())
        .min(this.scratch.len());
        if limit == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut sub = ReadBuf::new(&mut this.scratch[..limit]);
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
        let got = sub.filled().len();
        if got == 0 {
            return Poll::Ready(Ok(()));
        }
        buf.put_slice(&this.scratch[..got]);
        if this.hdr_have < 5 {
            this.hdr[this.hdr_have..this.hdr_have + got].copy_from_slice(&this.scratch[..got]);
            this.hdr_have += got;
            if this.hdr_have == 5 {
                this.body_left = usize::from(u16::from_be_bytes([this.hdr[3], this.hdr[4]]));
                if this.body_left == 0 {
                    this.hdr_have = 0;
                }
            }
        } else {
            this.body_left -= got;
            if this.body_left == 0 {
                this.hdr_have = 0;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for RecordReader {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn record_reader_stops_at_record_boundaries() {
        // Two records (5-byte headers, bodies of 3 and 2 bytes) followed by plaintext.
        let mut wire = vec![0x17, 3, 3, 0, 3, b'a', b'b', b'c', 0x15, 3, 3, 0, 2, 1, 0];
        wire.extend_from_slice(b"PLAINTEXT");
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &wire)
            .await
            .expect("write");
        let mut r = RecordReader::new(Box::new(b));
        r.set_records(true);
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 15 {
            let n = r.read(&mut buf).await.expect("read");
            assert!(got.len() + n <= 15, "read past the second record");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, wire[..15]);
        r.set_records(false);
        let n = r.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"PLAINTEXT");
    }
}
