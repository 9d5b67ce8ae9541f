//! Packet-loss concealment for waveform codecs (G.711, G.722), in the manner of G.711
//! Appendix I: repeat the last pitch period, widen the repeated stretch to two and then three
//! periods so it does not buzz, fade out from 10 ms to 60 ms of loss, and blend back into the
//! first good frame.
//!
//! Unlike Appendix I this adds no delay: the appendix holds back 3.75 ms so it can blend the
//! start of the loss into audio not yet played. Here the repeat starts exactly one pitch period
//! back, where the waveform best matches the audio just played, and every wrap of the repeated
//! stretch is blended over a quarter period. Lengths are given at 8 kHz and scale with the rate.

/// Shortest pitch period searched (5 ms, 200 Hz), in 8 kHz samples.
const PITCH_MIN: usize = 40;
/// Longest pitch period searched (15 ms, 66 Hz), in 8 kHz samples.
const PITCH_MAX: usize = 120;
/// Length of the stretch matched against the past when searching the pitch (20 ms).
const CORRELATION_LEN: usize = 160;
/// Audio kept: three longest periods plus a quarter period for the blend at the wrap.
const HISTORY_LEN: usize = 3 * PITCH_MAX + PITCH_MAX / 4;
/// Loss length after which the repeated stretch widens and the fade starts (10 ms).
const STAGE_LEN: usize = 80;
/// Loss length after which the output is silence (60 ms).
const SILENT_AFTER: usize = 6 * STAGE_LEN;
/// Blend back into the first good frame per 10 ms of loss (4 ms).
const RETURN_BLEND_STEP: usize = 32;
/// Longest blend back into the first good frame (10 ms).
const MAX_RETURN_BLEND: usize = 80;

/// Conceals lost frames of PCM at 8 kHz or a multiple of it. Feed every good frame to
/// [`Concealer::receive`] and call [`Concealer::conceal`] for each lost one.
#[derive(Clone, Debug)]
pub struct Concealer {
    /// Samples per 8 kHz sample (1 at 8 kHz, 2 at 16 kHz).
    scale: usize,
    /// The most recent output, oldest first.
    history: Vec<i16>,
    /// The history as it was when the current loss began: the material that is repeated.
    source: Vec<f32>,
    /// Pitch period found at the start of the loss, in samples.
    pitch: usize,
    /// Samples concealed so far in the current loss (0: not in a loss).
    lost: usize,
    /// Where the next sample comes from.
    cursor: Cursor,
    /// The cursor of the narrower stretch being blended out after a widening, if any.
    fading: Option<Cursor>,
}

/// A read position in the repeated stretch of the last `periods` pitch periods.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    periods: usize,
    position: usize,
}

impl Concealer {
    /// A concealer for audio at `sample_rate` (8000 or a multiple of it up to 48000; other
    /// rates are treated as the nearest multiple below).
    pub fn new(sample_rate: u32) -> Self {
        let scale = (sample_rate / 8000).clamp(1, 6) as usize;
        Self {
            scale,
            history: vec![0; HISTORY_LEN * scale],
            source: vec![0.0; HISTORY_LEN * scale],
            pitch: PITCH_MIN * scale,
            lost: 0,
            cursor: Cursor {
                periods: 1,
                position: 0,
            },
            fading: None,
        }
    }

    /// Takes a good frame. After a loss, blends its start with the continued concealment (in
    /// place), so the return is smooth.
    pub fn receive(&mut self, frame: &mut [i16]) {
        if self.lost > 0 {
            // Appendix I: 4 ms after 10 ms of loss, 4 ms more per further 10 ms, at most 10 ms.
            let stages = self.lost.div_ceil(STAGE_LEN * self.scale);
            let blend = (RETURN_BLEND_STEP * stages).min(MAX_RETURN_BLEND) * self.scale;
            let blend = blend.min(frame.len());
            for (k, sample) in frame[..blend].iter_mut().enumerate() {
                let weight = (k + 1) as f32 / (blend + 1) as f32;
                let concealed = self.next_concealed();
                *sample = to_pcm(concealed * (1.0 - weight) + f32::from(*sample) * weight);
            }
            self.lost = 0;
        }
        self.remember(frame);
    }

    /// Fills `out` with the continuation of the audio across a loss.
    pub fn conceal(&mut self, out: &mut [i16]) {
        if self.lost == 0 {
            self.begin_loss();
        }
        for sample in out.iter_mut() {
            *sample = to_pcm(self.next_concealed());
        }
        self.remember(out);
    }

    fn begin_loss(&mut self) {
        for (source, &sample) in self.source.iter_mut().zip(&self.history) {
            *source = f32::from(sample);
        }
        self.pitch = estimate_pitch(&self.source, self.scale);
        self.cursor = Cursor {
            periods: 1,
            position: 0,
        };
        self.fading = None;
    }

    /// The next concealed sample, with the fade applied; advances the loss.
    fn next_concealed(&mut self) -> f32 {
        let stage = STAGE_LEN * self.scale;
        if self.lost >= SILENT_AFTER * self.scale {
            return 0.0;
        }
        if self.lost > 0 && self.lost.is_multiple_of(stage) && self.cursor.periods < 3 {
            // Widen: continue at the same phase one period further back, blending over a
            // quarter period from the narrower stretch.
            self.fading = Some(self.cursor);
            self.cursor.periods += 1;
        }
        let quarter = self.pitch / 4;
        let mut value = self.read(self.cursor);
        if let Some(old) = self.fading {
            let done = (self.lost % stage) + 1;
            let weight = done as f32 / (quarter + 1) as f32;
            value = self.read(old) * (1.0 - weight) + value * weight;
            let mut old = old;
            self.advance(&mut old);
            self.fading = (done < quarter).then_some(old);
        }
        let mut cursor = self.cursor;
        self.advance(&mut cursor);
        self.cursor = cursor;

        // Full level for the first 10 ms, then 20 % less per 10 ms.
        let gain = if self.lost < stage {
            1.0
        } else {
            1.0 - 0.2 * (self.lost - stage) as f32 / stage as f32
        };
        self.lost += 1;
        value * gain.max(0.0)
    }

    /// The sample under `cursor`. Over its last quarter period, the stretch is blended with the
    /// audio one stretch earlier, so that the wrap back to its start is continuous.
    fn read(&self, cursor: Cursor) -> f32 {
        let span = cursor.periods * self.pitch;
        let start = self.source.len() - span;
        let quarter = self.pitch / 4;
        let here = self.source[start + cursor.position];
        let into_tail = (cursor.position + quarter + 1).saturating_sub(span);
        if into_tail == 0 {
            return here;
        }
        // The history is long enough for three periods plus this quarter: no underflow.
        let earlier = self.source[start + cursor.position - span];
        let weight = into_tail as f32 / (quarter + 1) as f32;
        here * (1.0 - weight) + earlier * weight
    }

    fn advance(&self, cursor: &mut Cursor) {
        cursor.position = (cursor.position + 1) % (cursor.periods * self.pitch);
    }

    fn remember(&mut self, frame: &[i16]) {
        let keep = self.history.len();
        if frame.len() >= keep {
            self.history.copy_from_slice(&frame[frame.len() - keep..]);
        } else {
            self.history.copy_within(frame.len().., 0);
            self.history[keep - frame.len()..].copy_from_slice(frame);
        }
    }
}

/// The pitch period (in samples) at the end of `history`: the lag whose past stretch best
/// matches the last 20 ms by normalised cross-correlation. A coarse search over every other
/// lag on every other sample, then a fine search around the best.
fn estimate_pitch(history: &[f32], scale: usize) -> usize {
    let (min, max) = (PITCH_MIN * scale, PITCH_MAX * scale);
    let step = 2 * scale;
    let best_of = |lags: &mut dyn Iterator<Item = usize>, stride: usize| {
        lags.map(|lag| {
            (
                lag,
                match_score(history, CORRELATION_LEN * scale, lag, stride),
            )
        })
        .fold((min, f32::NEG_INFINITY), |best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        })
        .0
    };
    let coarse = best_of(&mut (min..=max).step_by(step), step);
    let fine_lags = coarse.saturating_sub(step - 1).max(min)..=(coarse + step - 1).min(max);
    best_of(&mut fine_lags.into_iter(), 1)
}

/// Correlation of the last `window` samples with those `lag` earlier, normalised by the
/// energy of the earlier stretch, on every `stride`-th sample.
fn match_score(history: &[f32], window: usize, lag: usize, stride: usize) -> f32 {
    let recent = &history[history.len() - window..];
    let earlier = &history[history.len() - window - lag..history.len() - lag];
    let (mut correlation, mut energy) = (0.0, 1.0);
    for (r, e) in recent.iter().zip(earlier).step_by(stride) {
        correlation += r * e;
        energy += e * e;
    }
    correlation / energy.sqrt()
}

fn to_pcm(value: f32) -> i16 {
    // `as` saturates at the 16-bit limits.
    value.round() as i16
}

#[cfg(test)]
mod tests;
