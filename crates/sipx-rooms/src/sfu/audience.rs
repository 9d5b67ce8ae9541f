//! Whether anyone hears a phone participant: someone else in its room subscribes, and its own
//! audio is forwarded (it may publish and is not muted). While nobody does, its media thread
//! need not encode its voice for the room: the SFU would forward the packets to no one. Told
//! through `Output::PhoneHeard` when it changes, after every join, departure and mute.

use super::{Output, Participant, Role, Sfu};
use crate::ids::{ParticipantId, RoomKey};

impl Sfu {
    /// Tells each phone of `room` whether it is heard, where that changed.
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
            let heard = forwarded(p) && subscribers.iter().any(|s| *s != id);
            if p.heard != Some(heard) {
                p.heard = Some(heard);
                self.out.push_back(Output::PhoneHeard { phone: id, heard });
            }
        }
    }
}

/// Its audio goes to the room's subscribers at all.
fn forwarded(p: &Participant) -> bool {
    p.can_publish && !p.audio_muted()
}
