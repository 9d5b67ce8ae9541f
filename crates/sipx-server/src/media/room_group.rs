//! The phones of one room on one media thread hear it through one `RoomListener`: their own
//! voices cross between them as PCM, each other participant's Opus is decoded once for all of
//! them, everything is mixed once per distinct output (`sipx_media::bridge`), and what the
//! phones that do not talk hear is encoded once per format (`SharedEncoders`). A group is keyed by the room (its number, `Joined`) and the frame
//! rate; a leg whose link has not joined a room yet is a group of its own. Every leg of a
//! group ticks in the group's phase, so the group is mixed once per 20 ms, after every member
//! drained its link (`worker`). `MediaEngine::new_leg_id_near` puts a room's phones on one
//! thread, so that a room is one group.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use sipx_media::MediaError;
use sipx_media::bridge::{ListenerId, RoomListener, SharedEncoders};
use sipx_media::leg::LegConfig;

use super::PhoneLink;

/// Which phones mix together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum GroupKey {
    /// The phones of a room, at one frame rate.
    Room { room: u64, rate: u32 },
    /// A phone whose link has not joined yet (by the link's address), alone.
    Link { link: usize, rate: u32 },
}

impl GroupKey {
    pub(super) fn of(link: &Arc<PhoneLink>, rate: u32) -> GroupKey {
        match link.joined() {
            Some(j) => GroupKey::Room { room: j.room, rate },
            None => GroupKey::Link {
                link: Arc::as_ptr(link) as usize,
                rate,
            },
        }
    }
}

/// One group's listener and shared encoders, and when it was last mixed.
pub(super) struct Group {
    pub listener: RoomListener,
    pub shared: SharedEncoders,
    /// The phase its legs tick in.
    pub phase: usize,
    mixed: Option<Instant>,
    /// Changes whenever a phone joins or leaves: a leg's idea of who hears it beside it
    /// (`RoomBridge`) holds while this does.
    pub membership: u64,
}

impl Group {
    /// Mixes the tick due at `at`, once, whichever member asks first.
    pub fn mix(&mut self, at: Instant) {
        if self.mixed != Some(at) {
            self.listener.prepare(at);
            self.mixed = Some(at);
        }
    }
}

/// A media thread's groups.
#[derive(Default)]
pub(super) struct Groups {
    map: HashMap<GroupKey, Group>,
}

impl Groups {
    /// A phone joins its group (made for it if it is the first, ticking in `phase`); `own`
    /// is its participant key. Returns its listener and the phase the group ticks in.
    pub fn join(
        &mut self,
        key: GroupKey,
        config: &LegConfig,
        own: Option<u64>,
        phase: usize,
    ) -> Result<(ListenerId, usize), MediaError> {
        let group = match self.map.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Group {
                listener: RoomListener::new(config.frame_rate, &config.jitter)?,
                shared: SharedEncoders::default(),
                phase,
                mixed: None,
                membership: 0,
            }),
        };
        group.membership += 1;
        Ok((group.listener.add_listener(own), group.phase))
    }

    /// A phone leaves its group; the last one takes the group with it.
    pub fn leave(&mut self, key: GroupKey, listener: ListenerId) {
        if let Some(group) = self.map.get_mut(&key) {
            group.listener.remove_listener(listener);
            group.membership += 1;
            if group.listener.listeners() == 0 {
                self.map.remove(&key);
            }
        }
    }

    pub fn get_mut(&mut self, key: &GroupKey) -> Option<&mut Group> {
        self.map.get_mut(key)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use sipx_codec::CodecKind;

    use super::*;
    use crate::media::Joined;

    #[test]
    fn a_rooms_phones_share_a_group_and_its_phase_until_the_last_leaves() {
        let mut groups = Groups::default();
        let config = LegConfig::new(CodecKind::Pcmu, 0, "127.0.0.1:9".parse().unwrap());
        let (a, b, lone) = (
            PhoneLink::new(Arc::new(|| {})),
            PhoneLink::new(Arc::new(|| {})),
            PhoneLink::new(Arc::new(|| {})),
        );
        a.set_joined(Joined {
            room: 4,
            participant: 10,
        });
        b.set_joined(Joined {
            room: 4,
            participant: 11,
        });
        let key = GroupKey::of(&a, 8000);
        assert_eq!(key, GroupKey::of(&b, 8000));
        assert_ne!(key, GroupKey::of(&a, 16000));
        assert_ne!(GroupKey::of(&lone, 8000), GroupKey::of(&b, 8000));
        let (la, phase) = groups.join(key, &config, Some(10), 3).unwrap();
        assert_eq!(phase, 3);
        // The second phone ticks with the first, whatever phase it had.
        let (lb, phase) = groups.join(key, &config, Some(11), 9).unwrap();
        assert_eq!(phase, 3);
        groups
            .join(GroupKey::of(&lone, 8000), &config, None, 5)
            .unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups.get_mut(&key).unwrap().listener.listeners(), 2);
        groups.leave(key, la);
        assert_eq!(groups.get_mut(&key).unwrap().listener.listeners(), 1);
        groups.leave(key, lb);
        assert!(groups.get_mut(&key).is_none());
        assert_eq!(groups.len(), 1);
    }
}
