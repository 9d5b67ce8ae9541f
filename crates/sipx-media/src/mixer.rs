//! Mixer.
