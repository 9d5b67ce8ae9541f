//! Who hears a phone participant: the others in its room that subscribe, while its own audio
//! is forwarded (it may publish and is not muted). Its media thread uses the list twice: while
//! nobody hears the phone, or only phones that mix with it on the same thread (they take its
//! voice there, as PCM), its voice is not encoded for the room, as the SFU would forward the
//! packets to no one who needs them; and while nobody at all hears it, not even those phones
//! hear it. Told through `Output::PhoneHeard` when it changes, after every join, departure and
//! mute.

use super::{Output, Participant, Role, Sfu};
use crate::ids::{ParticipantId, RoomKey};

impl Sfu {
    /// Tells each phone of `room` who hears it, where that changed.
    pub(super) fn update_audience(&mut self, room: &RoomKey) {
        let Some(members) = self.rooms.get(room).map(|r| r.members.clone()) else {
            return;
        };
        let subscribers: Vec<ParticipantId> = members
            .iter()
            .copied()
            .filter(|m| self.participants.get(m).is_some_and(|p| p.can_subscribe))
            .collect();
        for id in members {
            let Some(p) = self.participants.get_mut(&id) else {
                continue;
            };
            if !matches!(p.role, Role::Phone) {
                continue;
            }
            let forwarded = forwarded(p);
            let heard_by = subscribers
                .iter()
                .copied()
                .filter(|s| forwarded && *s != id);
            if p.heard
                .as_ref()
                .is_some_and(|h| h.iter().copied().eq(heard_by.clone()))
            {
                continue;
            }
            let heard_by: Vec<ParticipantId> = heard_by.collect();
            p.heard = Some(heard_by.clone());
            self.out.push_back(Output::PhoneHeard {
                phone: id,
                heard_by,
            });
        }
    }
}

/// Its audio goes to the room's subscribers at all.
fn forwarded(p: &Participant) -> bool {
    p.can_publish && !p.audio_muted()
}
