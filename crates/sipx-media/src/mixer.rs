//! Mix-minus for one room at one sample rate: every participant may add a frame per tick, and
//! every listener gets the sum of everyone but itself, through a limiter.
//!
//! Work is saved where the result is known without mixing:
//! - nobody talks: everyone hears silence;
//! - one talker: the others get the talker's frame as it came (no copy, no arithmetic), the
//!   talker gets silence;
//! - two talkers: each gets the other's frame as it came.
//!
//! Otherwise the sum is made once in i32, and each talker hears the sum minus its own frame;
//! everyone who did not talk hears the same full mix. [`Mixer::output_key`] names each
//! listener's output so the caller encodes once per distinct output. A participant that only
//! talks ([`Mixer::add_talker`]: a room's browser, heard by phones but mixed for elsewhere)
//! gets no mix-minus of its own.
//!
//! Buffers are allocated when a participant is added, never per tick.

use std::fmt;

use crate::error::MediaError;
use crate::limiter::{self, Limiter};

/// A participant of the mixer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(u32);

impl fmt::Debug for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ParticipantId({})", self.0)
    }
}

/// What a listener hears this tick; listeners with equal keys hear identical samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputKey {
    Silence,
    /// One participant's frame, unchanged.
    Frame(ParticipantId),
    /// The mix of every talker.
    Everyone,
    /// The mix of every talker but this one.
    AllBut(ParticipantId),
}

#[derive(Debug)]
struct Participant {
    input: Box<[i16]>,
    has_input: bool,
    /// It talked in the last mixed tick.
    talked: bool,
    /// Someone reads its output (a talker only is mixed for nobody).
    listening: bool,
    /// This participant's mix-minus, when it talked in a mixed tick.
    output: Box<[i16]>,
    limiter: Limiter,
    key: OutputKey,
}

/// The mixer of one room.
#[derive(Debug)]
pub struct Mixer {
    frame: usize,
    steps: (f32, f32),
    participants: Vec<Option<Participant>>,
    talkers: Vec<usize>,
    total: Box<[i32]>,
    scratch: Box<[i32]>,
    gains: Box<[f32]>,
    everyone: Box<[i16]>,
    everyone_limiter: Limiter,
    silence: Box<[i16]>,
}

impl Mixer {
    /// A mixer for frames of `frame_samples` at `sample_rate` Hz (160 at 8 kHz, 960 at 48 kHz).
    pub fn new(frame_samples: usize, sample_rate: u32) -> Self {
        Mixer {
            frame: frame_samples,
            steps: limiter::steps(sample_rate),
            participants: Vec::new(),
            talkers: Vec::new(),
            total: vec![0; frame_samples].into_boxed_slice(),
            scratch: vec![0; frame_samples].into_boxed_slice(),
            gains: vec![0.0; frame_samples].into_boxed_slice(),
            everyone: vec![0; frame_samples].into_boxed_slice(),
            everyone_limiter: Limiter::new(),
            silence: vec![0; frame_samples].into_boxed_slice(),
        }
    }

    /// Adds a participant that talks and listens (allocates its buffers).
    pub fn add(&mut self) -> ParticipantId {
        self.add_with(true)
    }

    /// Adds a participant that only talks: its mix-minus is never made.
    pub fn add_talker(&mut self) -> ParticipantId {
        self.add_with(false)
    }

    /// Whether a participant listens from now on.
    pub fn set_listening(&mut self, id: ParticipantId, listening: bool) -> Result<(), MediaError> {
        let p = self
            .participants
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(MediaError::ApiMisuse("unknown participant"))?;
        p.listening = listening;
        Ok(())
    }

    fn add_with(&mut self, listening: bool) -> ParticipantId {
        let participant = Participant {
            input: vec![0; self.frame].into_boxed_slice(),
            has_input: false,
            talked: false,
            listening,
            output: vec![0; self.frame].into_boxed_slice(),
            limiter: Limiter::new(),
            key: OutputKey::Silence,
        };
        let index = match self.participants.iter().position(Option::is_none) {
            Some(free) => free,
            None => {
                self.participants.push(None);
                self.talkers.reserve(1);
                self.participants.len() - 1
            }
        };
        self.participants[index] = Some(participant);
        // Indices are bounded by the number of participants ever present at once.
        ParticipantId(index as u32)
    }

    pub fn remove(&mut self, id: ParticipantId) -> Result<(), MediaError> {
        let slot = self
            .participants
            .get_mut(id.0 as usize)
            .filter(|p| p.is_some())
            .ok_or(MediaError::ApiMisuse("unknown participant"))?;
        *slot = None;
        Ok(())
    }

    fn get(&self, id: ParticipantId) -> Result<&Participant, MediaError> {
        self.participants
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(MediaError::ApiMisuse("unknown participant"))
    }

    /// This tick's frame from a participant that talks; those who do not call it are silent.
    pub fn set_frame(&mut self, id: ParticipantId, pcm: &[i16]) -> Result<(), MediaError> {
        if pcm.len() != self.frame {
            return Err(MediaError::ApiMisuse(
                "frame length differs from the mixer's",
            ));
        }
        let p = self
            .participants
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(MediaError::ApiMisuse("unknown participant"))?;
        p.input.copy_from_slice(pcm);
        p.has_input = true;
        Ok(())
    }

    /// Mixes this tick's frames; then read [`Mixer::output`] per listener. Frames given
    /// before this call are consumed.
    pub fn mix(&mut self) {
        self.talkers.clear();
        for (i, p) in self.participants.iter().enumerate() {
            if p.as_ref().is_some_and(|p| p.has_input) {
                self.talkers.push(i);
            }
        }
        let id = |i: usize| ParticipantId(i as u32);
        let talkers = std::mem::take(&mut self.talkers);
        let listener_key = match talkers[..] {
            [] => OutputKey::Silence,
            [one] => OutputKey::Frame(id(one)),
            _ => OutputKey::Everyone,
        };
        if talkers.len() >= 2 {
            self.mix_everyone(&talkers);
        }
        for (i, slot) in self.participants.iter_mut().enumerate() {
            let Some(p) = slot else {
                continue;
            };
            p.key = match talkers[..] {
                _ if !p.has_input => listener_key,
                [_] => OutputKey::Silence,
                [a, b] => OutputKey::Frame(id(if i == a { b } else { a })),
                _ => OutputKey::AllBut(id(i)),
            };
            p.talked = p.has_input;
            p.has_input = false;
        }
        if talkers.len() > 2 {
            for &i in &talkers {
                if self.participants[i].as_ref().is_some_and(|p| p.listening) {
                    self.mix_minus(i);
                }
            }
        }
        self.talkers = talkers;
    }

    /// Sum of all talkers in i32 (no overflow: 2^16 talkers of full scale would be needed),
    /// then the shared limiter into the everyone mix.
    fn mix_everyone(&mut self, talkers: &[usize]) {
        self.total.fill(0);
        for &i in talkers {
            if let Some(p) = &self.participants[i] {
                limiter::accumulate(&mut self.total, &p.input);
            }
        }
        self.everyone_limiter
            .apply(&self.total, &mut self.everyone, &mut self.gains, self.steps);
    }

    /// Total minus own frame, through the talker's own limiter.
    fn mix_minus(&mut self, i: usize) {
        let Some(p) = self.participants[i].as_mut() else {
            return;
        };
        for ((s, &t), &own) in self
            .scratch
            .iter_mut()
            .zip(self.total.iter())
            .zip(p.input.iter())
        {
            *s = t - i32::from(own);
        }
        p.limiter
            .apply(&self.scratch, &mut p.output, &mut self.gains, self.steps);
    }

    /// What a listener hears this tick.
    pub fn output_key(&self, id: ParticipantId) -> Result<OutputKey, MediaError> {
        Ok(self.get(id)?.key)
    }

    /// Whether a participant talked in the last mixed tick: if not, it hears what every other
    /// listener who did not talk hears.
    pub fn talked(&self, id: ParticipantId) -> Result<bool, MediaError> {
        Ok(self.get(id)?.talked)
    }

    /// The samples a listener hears this tick (silence for a talker that does not listen).
    pub fn output(&self, id: ParticipantId) -> Result<&[i16], MediaError> {
        let p = self.get(id)?;
        if !p.listening && matches!(p.key, OutputKey::AllBut(_)) {
            return Ok(&self.silence);
        }
        Ok(match p.key {
            OutputKey::Silence => &self.silence,
            OutputKey::Frame(other) => &self.get(other)?.input,
            OutputKey::Everyone => &self.everyone,
            OutputKey::AllBut(me) => &self.get(me)?.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::goertzel::{goertzel_coeff, goertzel_power};

    const RATE: u32 = 8000;
    const FRAME: usize = 160;

    /// Frame `k` of a sine at `f` Hz with peak `amp`, continuous across frames.
    fn sine(f: f32, amp: f32, k: usize) -> Vec<i16> {
        (0..FRAME)
            .map(|n| {
                let t = (k * FRAME + n) as f32 / RATE as f32;
                (amp * (2.0 * std::f32::consts::PI * f * t).sin()).round() as i16
            })
            .collect()
    }

    /// Amplitude of the `f` Hz component of a frame (the Goertzel power scaled back).
    fn level(pcm: &[i16], f: f32) -> f32 {
        let block: Vec<f32> = pcm.iter().map(|&s| f32::from(s)).collect();
        let power = goertzel_power(&block, goertzel_coeff(f, RATE as f32));
        power.sqrt() * 2.0 / FRAME as f32
    }

    #[test]
    fn each_hears_the_others_and_not_itself() {
        let mut m = Mixer::new(FRAME, RATE);
        let ids = [m.add(), m.add(), m.add()];
        let freqs = [500.0, 1000.0, 1500.0];
        for k in 0..10 {
            for (id, f) in ids.iter().zip(freqs) {
                m.set_frame(*id, &sine(f, 8000.0, k)).unwrap();
            }
            m.mix();
            for (i, id) in ids.iter().enumerate() {
                let out = m.output(*id).unwrap();
                for (j, f) in freqs.iter().enumerate() {
                    let a = level(out, *f);
                    if i == j {
                        assert!(a < 50.0, "listener {i} hears itself at {a}");
                    } else {
                        assert!((a - 8000.0).abs() < 400.0, "listener {i} hears {j} at {a}");
                    }
                }
                assert_eq!(m.output_key(*id).unwrap(), OutputKey::AllBut(*id));
            }
        }
    }

    #[test]
    fn one_talker_is_forwarded_untouched() {
        let mut m = Mixer::new(FRAME, RATE);
        let ids = [m.add(), m.add(), m.add(), m.add()];
        // Full-scale content: any arithmetic or limiting would change it.
        let frame: Vec<i16> = (0..FRAME)
            .map(|n| if n % 2 == 0 { i16::MAX } else { i16::MIN })
            .collect();
        m.set_frame(ids[1], &frame).unwrap();
        m.mix();
        for id in [ids[0], ids[2], ids[3]] {
            assert_eq!(m.output(id).unwrap(), &frame[..]);
            assert_eq!(m.output_key(id).unwrap(), OutputKey::Frame(ids[1]));
        }
        assert!(m.output(ids[1]).unwrap().iter().all(|&s| s == 0));
        assert_eq!(m.output_key(ids[1]).unwrap(), OutputKey::Silence);
        // Next tick nobody talks: silence for all, one shared output.
        m.mix();
        assert!(
            ids.iter()
                .all(|id| m.output_key(*id).unwrap() == OutputKey::Silence)
        );
    }

    #[test]
    fn listeners_share_outputs_so_each_distinct_one_is_encoded_once() {
        let mut m = Mixer::new(FRAME, RATE);
        let ids: Vec<_> = (0..6).map(|_| m.add()).collect();
        for (k, id) in ids.iter().take(3).enumerate() {
            m.set_frame(*id, &sine(300.0 * (k + 1) as f32, 3000.0, 0))
                .unwrap();
        }
        m.mix();
        let keys: std::collections::HashSet<_> =
            ids.iter().map(|id| m.output_key(*id).unwrap()).collect();
        // Three mix-minus outputs and one shared by the three who listen only.
        assert_eq!(keys.len(), 4);
        assert_eq!(m.output(ids[3]).unwrap(), m.output(ids[5]).unwrap());
        // Two talkers: each hears the other's frame as is.
        let a = sine(440.0, 5000.0, 0);
        let b = sine(880.0, 5000.0, 0);
        m.set_frame(ids[0], &a).unwrap();
        m.set_frame(ids[1], &b).unwrap();
        m.mix();
        assert_eq!(m.output(ids[0]).unwrap(), &b[..]);
        assert_eq!(m.output(ids[1]).unwrap(), &a[..]);
        assert_eq!(m.output_key(ids[2]).unwrap(), OutputKey::Everyone);
    }

    #[test]
    fn ten_loud_talkers_are_limited_not_clipped() {
        let mut m = Mixer::new(FRAME, RATE);
        let talkers: Vec<_> = (0..10).map(|_| m.add()).collect();
        let listener = m.add();
        for k in 0..25 {
            let frame = sine(400.0, 20_000.0, k);
            for id in &talkers {
                m.set_frame(*id, &frame).unwrap();
            }
            m.mix();
            let out = m.output(listener).unwrap();
            let peak = out.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!(peak <= 32_000, "tick {k}: peak {peak}");
            // No wrap-around: every sample keeps the sign of the (scaled) input.
            for (o, i) in out.iter().zip(&frame) {
                assert!(i32::from(*o) * i32::from(*i) >= 0, "tick {k}: {o} vs {i}");
            }
            if k >= 2 {
                // Settled: a clean sine at the ceiling, not a squared-off one. Clipping would
                // put energy into the odd harmonics.
                let fundamental = level(out, 400.0);
                let third = level(out, 1200.0);
                assert!(fundamental > 30_000.0, "tick {k}: {fundamental}");
                assert!(third < fundamental / 100.0, "tick {k}: third {third}");
            }
        }
    }

    #[test]
    fn a_talker_that_does_not_listen_gets_no_mix_of_its_own() {
        let mut m = Mixer::new(FRAME, RATE);
        let browsers = [m.add_talker(), m.add_talker(), m.add_talker()];
        let phone = m.add();
        for (k, id) in browsers.iter().enumerate() {
            m.set_frame(*id, &sine(300.0 * (k + 1) as f32, 3000.0, 0))
                .unwrap();
        }
        m.mix();
        assert!(!m.talked(phone).unwrap() && m.talked(browsers[0]).unwrap());
        assert_eq!(m.output_key(phone).unwrap(), OutputKey::Everyone);
        assert!(m.output(browsers[0]).unwrap().iter().all(|&s| s == 0));
        // Once it listens, it gets its mix-minus.
        m.set_listening(browsers[0], true).unwrap();
        for id in browsers {
            m.set_frame(id, &sine(500.0, 3000.0, 0)).unwrap();
        }
        m.mix();
        assert!(m.output(browsers[0]).unwrap().iter().any(|&s| s != 0));
        assert!(m.set_listening(ParticipantId(99), true).is_err());
    }

    #[test]
    fn refuses_wrong_lengths_and_unknown_participants() {
        let mut m = Mixer::new(FRAME, RATE);
        let id = m.add();
        assert!(m.set_frame(id, &[0; 10]).is_err());
        m.remove(id).unwrap();
        assert!(m.set_frame(id, &[0; FRAME]).is_err());
        assert!(m.output(id).is_err());
        assert!(m.remove(id).is_err());
        // The slot is reused.
        assert_eq!(m.add(), id);
    }
}
