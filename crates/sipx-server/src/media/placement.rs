//! Which media thread a new leg goes to: the one with the fewest legs, except that the phones of
//! a room all go where its first phone went while any of them is up (they mix together there,
//! `room_group`). A room's key is known here only by its hash: two rooms with the same hash share
//! a thread, which costs balance, never correctness. Pure bookkeeping, behind the engine's lock.

use std::collections::HashMap;

use super::LegId;

pub(super) struct Placement {
    /// Legs placed on each thread and not yet released.
    load: Vec<usize>,
    /// Room hash → (thread, legs up there).
    rooms: HashMap<u64, (usize, usize)>,
    /// Each placed leg's thread and room.
    legs: HashMap<LegId, (usize, Option<u64>)>,
}

impl Placement {
    pub fn new(threads: usize) -> Self {
        Placement {
            load: vec![0; threads.max(1)],
            rooms: HashMap::new(),
            legs: HashMap::new(),
        }
    }

    /// Chooses a thread for a new leg (of room `room`, if it is to be in one) and counts the
    /// leg there under the id `id_on` makes for that thread.
    pub fn place(&mut self, room: Option<u64>, id_on: impl FnOnce(usize) -> LegId) -> LegId {
        let least = || {
            (0..self.load.len())
                .min_by_key(|&t| self.load[t])
                .unwrap_or(0)
        };
        let thread = match room.and_then(|r| self.rooms.get(&r)) {
            Some(&(thread, _)) => thread,
            None => least(),
        };
        if let Some(r) = room {
            self.rooms.entry(r).or_insert((thread, 0)).1 += 1;
        }
        if let Some(n) = self.load.get_mut(thread) {
            *n += 1;
        }
        let id = id_on(thread);
        self.legs.insert(id, (thread, room));
        id
    }

    /// Leg `id` is gone (releasing it twice is harmless).
    pub fn release(&mut self, id: LegId) {
        let Some((thread, room)) = self.legs.remove(&id) else {
            return;
        };
        if let Some(n) = self.load.get_mut(thread) {
            *n = n.saturating_sub(1);
        }
        if let Some(r) = room
            && let Some(entry) = self.rooms.get_mut(&r)
        {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                self.rooms.remove(&r);
            }
        }
    }

    #[cfg(test)]
    fn load(&self) -> &[usize] {
        &self.load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Places leg `id` and says on which thread.
    fn place(p: &mut Placement, id: u64, room: Option<u64>) -> usize {
        let mut thread = usize::MAX;
        p.place(room, |t| {
            thread = t;
            LegId(id)
        });
        thread
    }

    #[test]
    fn legs_go_to_the_least_loaded_thread_and_a_rooms_legs_stay_together() {
        let mut p = Placement::new(2);
        // A room's first phone takes the emptier thread; the room's others follow it.
        assert_eq!(place(&mut p, 1, Some(7)), 0);
        assert_eq!(place(&mut p, 2, None), 1);
        assert_eq!(place(&mut p, 3, Some(7)), 0);
        assert_eq!(place(&mut p, 4, Some(7)), 0);
        // Another room starts on the emptier thread.
        assert_eq!(place(&mut p, 5, Some(8)), 1);
        assert_eq!(p.load(), &[3, 2]);
        // Rooms spread by load, not by hash: twenty rooms of three on two threads, even.
        let mut q = Placement::new(2);
        for room in 0..20u64 {
            for k in 0..3 {
                place(&mut q, room * 10 + k, Some(room));
            }
        }
        assert_eq!(q.load(), &[30, 30]);
        // Once a room's last leg is gone, its next phone is placed afresh.
        for id in [1, 3, 4] {
            p.release(LegId(id));
        }
        p.release(LegId(4));
        assert_eq!(p.load(), &[0, 2]);
        assert_eq!(place(&mut p, 6, Some(7)), 0);
        p.release(LegId(99));
    }
}
