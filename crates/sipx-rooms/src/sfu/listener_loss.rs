//! The packet loss browsers report (RTCP receiver reports, surfaced by str0m's egress stats)
//! on the phones' voices they receive. A phone's voice is encoded once for everyone who hears
//! it, so its Opus in-band FEC is sized for the worst of its listeners, in the steps WebRTC's
//! own Opus sender uses; told through `Output::PhoneLoss` when a phone's step changes. With
//! no loss there is no FEC: it would take bits from the voice and CPU for nothing.
//!
//! Loss comes in bursts, and one clean report (they come every 2 s) says little about the
//! next: a listener's figure rises at once with what it reports but falls only by a fifth per
//! report, so FEC stays on for some seconds after a burst (after 12 %, 6 s more above 5 % and
//! 22 s above 1 %) instead of going off and on with every other report.

use std::collections::HashMap;

use crate::ids::ParticipantId;

/// What is left of a listener's loss figure after each report that says less.
const DECAY: f32 = 0.8;
/// Expected loss steps in percent, and the reported loss that reaches each.
const STEPS: [(f32, u8); 4] = [(0.20, 20), (0.10, 10), (0.05, 5), (0.01, 1)];

/// The FEC step for a reported loss fraction (0.0–1.0).
pub(crate) fn step(fraction: f32) -> u8 {
    STEPS
        .iter()
        .find(|(from, _)| fraction >= *from)
        .map_or(0, |&(_, percent)| percent)
}

#[derive(Debug, Default)]
pub(crate) struct ListenerLoss {
    /// Per phone: each listener's loss fraction on its voice, as reported and decayed.
    reports: HashMap<ParticipantId, HashMap<ParticipantId, f32>>,
    /// Per phone: the step last told.
    told: HashMap<ParticipantId, u8>,
}

impl ListenerLoss {
    /// `listener` reported `fraction` lost on `phone`'s voice: the phone's new step, if it
    /// changed.
    pub fn report(
        &mut self,
        phone: ParticipantId,
        listener: ParticipantId,
        fraction: f32,
    ) -> Option<u8> {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let held = self
            .reports
            .entry(phone)
            .or_default()
            .entry(listener)
            .or_insert(0.0);
        *held = fraction.max(*held * DECAY);
        self.retell(phone)
    }

    /// `id` left: as a phone its reports go, as a listener its reports on every phone go.
    /// Returns the phones whose step changed, with the new step.
    pub fn forget(&mut self, id: ParticipantId) -> Vec<(ParticipantId, u8)> {
        self.reports.remove(&id);
        self.told.remove(&id);
        let phones: Vec<ParticipantId> = self
            .reports
            .iter_mut()
            .filter_map(|(phone, by)| by.remove(&id).map(|_| *phone))
            .collect();
        phones
            .into_iter()
            .filter_map(|phone| self.retell(phone).map(|s| (phone, s)))
            .collect()
    }

    fn retell(&mut self, phone: ParticipantId) -> Option<u8> {
        let worst = self
            .reports
            .get(&phone)
            .map_or(0.0, |by| by.values().copied().fold(0.0, f32::max));
        let now = step(worst);
        let before = self.told.insert(phone, now).unwrap_or(0);
        (now != before).then_some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ParticipantId {
        ParticipantId(n)
    }

    #[test]
    fn steps_follow_the_reported_fraction() {
        assert_eq!(step(0.0), 0);
        assert_eq!(step(0.009), 0);
        assert_eq!(step(0.01), 1);
        assert_eq!(step(0.049), 1);
        assert_eq!(step(0.05), 5);
        assert_eq!(step(0.12), 10);
        assert_eq!(step(0.5), 20);
    }

    #[test]
    fn a_phone_is_sized_for_its_worst_listener_and_told_only_of_changes() {
        let mut loss = ListenerLoss::default();
        let (phone, a, b) = (id(1), id(2), id(3));
        // No loss reported: nothing to tell (the encoder starts without FEC).
        assert_eq!(loss.report(phone, a, 0.0), None);
        assert_eq!(loss.report(phone, a, 0.06), Some(5));
        assert_eq!(loss.report(phone, a, 0.07), None);
        assert_eq!(loss.report(phone, b, 0.25), Some(20));
        // b leaves: a's figure is what counts.
        assert_eq!(loss.forget(b), vec![(phone, 5)]);
        assert_eq!(
            loss.report(phone, a, f32::NAN),
            None,
            "garbage counts as no loss"
        );
    }

    #[test]
    fn loss_rises_at_once_and_falls_over_several_clean_reports() {
        let mut loss = ListenerLoss::default();
        let (phone, a) = (id(1), id(2));
        assert_eq!(loss.report(phone, a, 0.12), Some(10));
        // Clean reports every 2 s: 9.6 %, 7.7 %, 6.1 %, 4.9 % ...
        let steps: Vec<Option<u8>> = (0..12).map(|_| loss.report(phone, a, 0.0)).collect();
        assert_eq!(steps[0], Some(5), "one clean report: down a step, not off");
        assert_eq!(steps[1..3], [None, None]);
        assert_eq!(steps[3], Some(1));
        let off = steps.iter().position(|s| *s == Some(0));
        assert_eq!(off, Some(11), "off after about 24 s of clean reports");
        // A new burst counts in full at once.
        assert_eq!(loss.report(phone, a, 0.3), Some(20));
    }

    #[test]
    fn a_departed_phone_is_forgotten() {
        let mut loss = ListenerLoss::default();
        assert_eq!(loss.report(id(1), id(2), 0.3), Some(20));
        assert!(loss.forget(id(1)).is_empty());
        // Back under the same id (not done, but harmless): told afresh.
        assert_eq!(loss.report(id(1), id(2), 0.3), Some(20));
    }
}
