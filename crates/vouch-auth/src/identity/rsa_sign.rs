//! RSASSA-PKCS1-v1_5 signing with SHA-1 or SHA-256 (RFC 4474 §6 `rsa-sha1`, RFC 4474 §6 /
//! RFC 8224 `rsa-sha256`) through AWS-LC's EVP interface.
//!
//! aws-lc-rs has no safe API for SHA-1 signatures, yet RFC 4474 mandates `rsa-sha1` and every
//! peer that still speaks it (Kamailio auth_identity, OpenSIPS identity) accepts nothing else.
//! This module is the one place in vouch's library crates with `unsafe`: a dozen calls into
//! `aws-lc-sys`. PKCS#1 v1.5 is deterministic, so the RFC 4474 §10 signatures are reproduced
//! byte for byte (tests/identity_vectors.rs).
//!
//! Safety argument, once for the module:
//! - Every pointer handed to AWS-LC is either a valid pointer to a live Rust buffer with the
//!   length passed beside it, or a pointer AWS-LC itself returned and we checked for NULL.
//! - `RsaSigningKey` owns exactly one reference to its `EVP_PKEY` and frees it once, in `Drop`;
//!   the `EVP_MD_CTX` of a signature is created and freed within [`RsaSigningKey::sign`], on
//!   every path (a guard frees it).
//! - The output buffer is `EVP_PKEY_size` bytes, the maximum an RSA signature can take, and
//!   AWS-LC writes at most `*out_len` bytes, which it updates to the true length.
//! - An `EVP_PKEY` is never mutated after parsing; AWS-LC documents concurrent signing with
//!   one key from several threads (each with its own `EVP_MD_CTX`) as safe, hence `Send`/`Sync`.
#![allow(unsafe_code)]

use std::os::raw::c_long;
use std::ptr;

use aws_lc_sys as sys;

/// The hash of an RSA PKCS#1 v1.5 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaHash {
    /// SHA-1 (`rsa-sha1`, legacy, required by RFC 4474).
    Sha1,
    /// SHA-256 (`rsa-sha256`).
    Sha256,
}

/// Why a key could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RsaKeyError {
    /// The DER is not a private key AWS-LC can read.
    #[error("not a readable private key (PKCS#1 or PKCS#8 DER expected)")]
    Unreadable,
    /// The key is not RSA.
    #[error("the key is not an RSA key")]
    NotRsa,
    /// AWS-LC refused to sign.
    #[error("signing failed")]
    SignFailed,
}

/// An RSA private key held by AWS-LC.
pub struct RsaSigningKey {
    pkey: ptr::NonNull<sys::EVP_PKEY>,
    bits: usize,
}

// SAFETY: see the module documentation: the key is immutable after construction and AWS-LC
// supports concurrent use of one EVP_PKEY with separate contexts.
unsafe impl Send for RsaSigningKey {}
// SAFETY: as above.
unsafe impl Sync for RsaSigningKey {}

impl std::fmt::Debug for RsaSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaSigningKey({} bits)", self.bits)
    }
}

impl Drop for RsaSigningKey {
    fn drop(&mut self) {
        // SAFETY: we own the only reference, obtained from d2i_AutoPrivateKey.
        unsafe { sys::EVP_PKEY_free(self.pkey.as_ptr()) }
    }
}

struct MdCtx(*mut sys::EVP_MD_CTX);

impl Drop for MdCtx {
    fn drop(&mut self) {
        // SAFETY: created by EVP_MD_CTX_new (non-NULL checked) and freed only here.
        unsafe { sys::EVP_MD_CTX_free(self.0) }
    }
}

impl RsaSigningKey {
    /// Reads a PKCS#1 `RSAPrivateKey` or PKCS#8 `PrivateKeyInfo` in DER.
    pub fn from_der(der: &[u8]) -> Result<Self, RsaKeyError> {
        let len = c_long::try_from(der.len()).map_err(|_| RsaKeyError::Unreadable)?;
        let mut inp = der.as_ptr();
        // SAFETY: `inp` points at `len` readable bytes; AWS-LC only reads them and advances
        // `inp` within that range.
        let raw = unsafe { sys::d2i_AutoPrivateKey(ptr::null_mut(), &mut inp, len) };
        let pkey = ptr::NonNull::new(raw).ok_or(RsaKeyError::Unreadable)?;
        // SAFETY: `pkey` is a valid EVP_PKEY just returned.
        let (id, size) = unsafe {
            (
                sys::EVP_PKEY_id(pkey.as_ptr()),
                sys::EVP_PKEY_size(pkey.as_ptr()),
            )
        };
        let key = RsaSigningKey {
            pkey,
            bits: usize::try_from(size).unwrap_or(0) * 8,
        };
        if id != sys::EVP_PKEY_RSA {
            return Err(RsaKeyError::NotRsa);
        }
        Ok(key)
    }

    /// Reads a PEM private key (`RSA PRIVATE KEY` or `PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, RsaKeyError> {
        use rustls_pki_types::PrivateKeyDer;
        use rustls_pki_types::pem::PemObject;
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| RsaKeyError::Unreadable)?;
        Self::from_der(der.secret_der())
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Signs `data` (hashing it with `hash`) and returns the signature.
    pub fn sign(&self, hash: RsaHash, data: &[u8]) -> Result<Vec<u8>, RsaKeyError> {
        // SAFETY: EVP_MD_CTX_new has no preconditions; NULL is checked.
        let ctx = MdCtx(unsafe { sys::EVP_MD_CTX_new() });
        if ctx.0.is_null() {
            return Err(RsaKeyError::SignFailed);
        }
        // SAFETY: the digest constructors return static tables.
        let md = unsafe {
            match hash {
                RsaHash::Sha1 => sys::EVP_sha1(),
                RsaHash::Sha256 => sys::EVP_sha256(),
            }
        };
        // SAFETY: ctx and pkey are valid; a NULL pctx and engine are allowed.
        let ok = unsafe {
            sys::EVP_DigestSignInit(
                ctx.0,
                ptr::null_mut(),
                md,
                ptr::null_mut(),
                self.pkey.as_ptr(),
            )
        };
        if ok != 1 {
            return Err(RsaKeyError::SignFailed);
        }
        let mut out = vec![0u8; self.bits / 8];
        let mut out_len = out.len();
        // SAFETY: `out` has `out_len` writable bytes (the key's maximum signature size); `data`
        // has `data.len()` readable bytes.
        let ok = unsafe {
            sys::EVP_DigestSign(
                ctx.0,
                out.as_mut_ptr(),
                &mut out_len,
                data.as_ptr(),
                data.len(),
            )
        };
        if ok != 1 || out_len > out.len() {
            return Err(RsaKeyError::SignFailed);
        }
        out.truncate(out_len);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage_and_non_rsa_keys() {
        assert_eq!(
            RsaSigningKey::from_der(b"not a key").unwrap_err(),
            RsaKeyError::Unreadable
        );
        assert_eq!(
            RsaSigningKey::from_der(&[]).unwrap_err(),
            RsaKeyError::Unreadable
        );
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap();
        assert_eq!(
            RsaSigningKey::from_der(ec.as_ref()).unwrap_err(),
            RsaKeyError::NotRsa
        );
    }
}
