//! The voice prompts a leg can play (the PIN flow's), decoded once per process and frame
//! rate from the WAV files compiled into `sipx-media`, then shared by every leg: a leg that
//! starts a prompt allocates one frame buffer, and playing it allocates nothing.

use std::sync::OnceLock;

use sipx_call::Prompt;
use sipx_media::prompt::{PromptAudio, PromptPlayer, prompts};

/// The rates a leg's frames can have.
const RATES: [u32; 3] = [8_000, 16_000, 48_000];

fn wav(prompt: Prompt) -> &'static [u8] {
    match prompt {
        Prompt::EnterPin => prompts::ENTER_PIN,
        Prompt::WrongPin => prompts::WRONG_PIN,
        Prompt::Goodbye => prompts::GOODBYE,
    }
}

fn index(prompt: Prompt) -> usize {
    match prompt {
        Prompt::EnterPin => 0,
        Prompt::WrongPin => 1,
        Prompt::Goodbye => 2,
    }
}

/// `prompt` at `rate`; `None` for a rate no leg has, or a shipped file that does not decode
/// (the tests in `sipx-media` rule that out).
pub fn audio(prompt: Prompt, rate: u32) -> Option<PromptAudio> {
    static CACHE: [[OnceLock<Option<PromptAudio>>; 3]; 3] =
        [const { [const { OnceLock::new() }; 3] }; 3];
    let r = RATES.iter().position(|&x| x == rate)?;
    CACHE[index(prompt)][r]
        .get_or_init(|| match PromptAudio::decode(wav(prompt), rate) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(?prompt, rate, error = %e, "a shipped prompt does not decode");
                None
            }
        })
        .clone()
}

/// A player of `prompt` at `rate`.
pub fn player(prompt: Prompt, rate: u32) -> Option<PromptPlayer> {
    audio(prompt, rate).map(PromptPlayer::new)
}

/// How long `prompt` plays (at the files' own rate).
pub fn duration(prompt: Prompt) -> std::time::Duration {
    audio(prompt, 16_000).map_or(std::time::Duration::ZERO, |a| a.duration())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prompt_plays_at_every_leg_rate() {
        for prompt in [Prompt::EnterPin, Prompt::WrongPin, Prompt::Goodbye] {
            for rate in RATES {
                let mut p = player(prompt, rate).map(Box::new);
                let frame = p.as_mut().map(|p| p.next_frame().len());
                assert_eq!(frame, Some(rate as usize / 50), "{prompt:?} at {rate}");
            }
            assert!(duration(prompt).as_secs_f64() > 1.0, "{prompt:?}");
        }
        assert!(audio(Prompt::EnterPin, 44_100).is_none());
    }
}
