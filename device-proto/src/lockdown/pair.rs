//! Checking a `Pair` request's record the way a phone must: leniently (clients send serial-0,
//! empty-name, SHA-1, CA:TRUE certificates and all of them pair with real phones) but never
//! accepting a DeviceCertificate that is not for this phone's key.

use plist::{Dictionary, Value};
use x509_parser::prelude::*;

use super::tls::pem_to_der;
use crate::state::TrustedHost;

/// Why a pair record was refused (lockdown error `InvalidPairRecord`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the request has no PairRecord dictionary")]
    NoRecord,
    #[error("the pair record lacks {0}")]
    Missing(&'static str),
    #[error("{0} is not a PEM X.509 certificate")]
    BadCertificate(&'static str),
    #[error("the DeviceCertificate is not for this phone's public key")]
    WrongDeviceKey,
}

fn cert<'a>(rec: &'a Dictionary, key: &'static str) -> Result<&'a [u8], RecordError> {
    rec.get(key)
        .and_then(Value::as_data)
        .ok_or(RecordError::Missing(key))
}

fn parse_cert(pem: &[u8], key: &'static str) -> Result<Vec<u8>, RecordError> {
    let der = pem_to_der(pem).ok_or(RecordError::BadCertificate(key))?;
    X509Certificate::from_der(&der).map_err(|_| RecordError::BadCertificate(key))?;
    Ok(der)
}

/// Validates the `PairRecord` of a Pair request and returns what the phone will remember.
/// `device_pkcs1` is this phone's public key as PKCS#1 DER.
pub fn validate(
    req: &Dictionary,
    device_pkcs1: &[u8],
    escrow_bag: Vec<u8>,
) -> Result<TrustedHost, RecordError> {
    let rec = req
        .get("PairRecord")
        .and_then(Value::as_dictionary)
        .ok_or(RecordError::NoRecord)?;
    let host_id = rec
        .get("HostID")
        .and_then(Value::as_string)
        .filter(|s| !s.is_empty())
        .ok_or(RecordError::Missing("HostID"))?;
    let device_pem = cert(rec, "DeviceCertificate")?;
    let host_pem = cert(rec, "HostCertificate")?;
    let root_pem = cert(rec, "RootCertificate")?;
    let device_der = parse_cert(device_pem, "DeviceCertificate")?;
    parse_cert(host_pem, "HostCertificate")?;
    parse_cert(root_pem, "RootCertificate")?;
    let (_, device) = X509Certificate::from_der(&device_der)
        .map_err(|_| RecordError::BadCertificate("DeviceCertificate"))?;
    if device.public_key().subject_public_key.data.as_ref() != device_pkcs1 {
        return Err(RecordError::WrongDeviceKey);
    }
    Ok(TrustedHost {
        host_id: host_id.to_string(),
        system_buid: rec
            .get("SystemBUID")
            .and_then(Value::as_string)
            .map(str::to_string),
        host_name: req
            .get("HostName")
            .and_then(Value::as_string)
            .map(str::to_string),
        root_certificate: root_pem.to_vec(),
        host_certificate: host_pem.to_vec(),
        device_certificate: device_pem.to_vec(),
        escrow_bag,
    })
}

/// The HostID a ValidatePair / Unpair request names (in its PairRecord, or at top level).
pub fn host_id_of(req: &Dictionary) -> Option<String> {
    req.get("PairRecord")
        .and_then(Value::as_dictionary)
        .and_then(|r| r.get("HostID"))
        .or_else(|| req.get("HostID"))
        .and_then(Value::as_string)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_pieces_are_named() {
        let mut req = Dictionary::new();
        assert_eq!(validate(&req, b"k", vec![]), Err(RecordError::NoRecord));
        let mut rec = Dictionary::new();
        rec.insert("HostID".into(), Value::String("H".into()));
        req.insert("PairRecord".into(), Value::Dictionary(rec.clone()));
        assert_eq!(
            validate(&req, b"k", vec![]),
            Err(RecordError::Missing("DeviceCertificate"))
        );
        for k in ["DeviceCertificate", "HostCertificate", "RootCertificate"] {
            rec.insert(k.into(), Value::Data(b"not pem".to_vec()));
        }
        req.insert("PairRecord".into(), Value::Dictionary(rec));
        assert_eq!(
            validate(&req, b"k", vec![]),
            Err(RecordError::BadCertificate("DeviceCertificate"))
        );
        assert_eq!(host_id_of(&req).as_deref(), Some("H"));
    }
}
