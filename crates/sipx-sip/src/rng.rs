//! A small deterministic generator for tags, branches and Call-IDs.
//!
//! The core has no access to the OS: the driver seeds it from the system CSPRNG, and tests seed
//! it with a constant so runs are reproducible. Tags only need to be unique, not secret; nonces
//! (which must be unguessable) are made by the digest module from keyed HMACs instead.

#[derive(Debug, Clone)]
pub struct Rng(u64, u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut r = Rng(seed ^ 0x9e37_79b9_7f4a_7c15, seed.rotate_left(32) | 1);
        r.next_u64();
        r
    }

    /// xorshift128+.
    pub fn next_u64(&mut self) -> u64 {
        let mut s1 = self.0;
        let s0 = self.1;
        self.0 = s0;
        s1 ^= s1 << 23;
        self.1 = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
        self.1.wrapping_add(s0)
    }

    /// `len` characters of `[0-9a-z]`.
    pub fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| ALPHABET[(self.next_u64() % 36) as usize] as char)
            .collect()
    }
}
