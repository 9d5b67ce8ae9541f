//! How a phone's voice is encoded for the room: one setting for the room path, the Opus echo
//! test that stands for it, and the benchmark floor that prices it, so all three measure the
//! same work.
//!
//! Chosen by measurement (`bench/opus_voice.py`: PESQ of speech through μ-law → Opus → μ-law
//! against the μ-law alone, and libopus' cost per 20 ms, on five recordings with and without
//! background noise):
//! - **24 kbit/s at 8 kHz**: narrowband SILK has every bit it can use; PESQ 4.32–4.46 at
//!   complexity 1 to 5, where libopus' automatic 11 kbit/s gives 3.2–4.0.
//! - **complexity 1 at 8 kHz**: PESQ 4.40 on average against 4.42 at complexity 5 (at most
//!   0.07 lower on one recording) for half its cost (47–60 µs per 20 ms for encode + decode
//!   against 109–116 on the same run; complexity 2 and 3 cost more and score the same). The
//!   phone's audio went through G.711 already; the encoder's finer searches find nothing left
//!   to keep. Complexity 0 would be cheaper still, but libopus then sends no FEC at all.
//! - **32 kbit/s, complexity 5 at 16 kHz** (G.722 phones; `opus_voice.py --wideband`, PESQ
//!   P.862.2): there the searches pay, wideband PESQ 4.33 at complexity 5 against 4.12 at 3
//!   and 4.07 at 1; 24 kbit/s loses 0.18.
//! - **FEC sized by the loss the listeners report** (`RoomSpeaker::set_expected_loss`),
//!   starting at none: sized for a fixed 10 %, the redundant copy takes its bits from the voice
//!   (mean PESQ on a clean network 4.40 → 3.88 at complexity 1, 4.42 → 4.09 at 5; wideband
//!   4.33 → 3.76) and costs CPU (a third more at complexity 5).

use sipx_codec::EncoderOptions;

/// Opus complexity for voice fed at 8 kHz (see the module's measurements).
pub const NARROWBAND_COMPLEXITY: u8 = 1;
/// Opus complexity above 8 kHz (see the module's measurements).
pub const WIDEBAND_COMPLEXITY: u8 = 5;

/// The encoder settings for a phone's voice fed at `frame_rate`, before any loss report.
pub fn room_voice_options(frame_rate: u32) -> EncoderOptions {
    let narrowband = frame_rate <= 8000;
    EncoderOptions::default()
        .bitrate(if narrowband { 24_000 } else { 32_000 })
        .complexity(if narrowband {
            NARROWBAND_COMPLEXITY
        } else {
            WIDEBAND_COMPLEXITY
        })
        .fec(true)
        .expected_loss_percent(0)
        .dtx(false)
}
