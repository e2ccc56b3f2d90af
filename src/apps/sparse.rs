//! Giving back the room of tables that emptied.
//!
//! Rust's hash maps, sets and slabs never shrink by themselves: a table
//! that once held 15 000 long-poll waiters would keep slots for 15 000
//! after they left, and with a new room per crowd that adds up (the `idle`
//! benchmark saw ~0.9 MB stay behind per 15 000 waiters). The apps' hash
//! and slab tables of waiters and members call [`shrink_if_sparse`] after
//! removing an entry (a chat room's waiters and subscribers are B-trees,
//! which free their nodes as they empty and need no help):
//! a table at most a quarter full gives back half its room. Halving (not
//! fitting) keeps the cost amortized O(1) for a table whose size swings
//! around one value.
//!
//! No Tornado counterpart: its chat demo keeps waiters in a Python `set`,
//! which does not shrink when entries are removed either.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Tables below this capacity are left alone: too small to matter.
const MIN_CAPACITY: usize = 64;

/// A table that can report and halve its unused room.
pub trait Sparse {
    /// At most a quarter of the capacity is used (and the table is not tiny).
    fn sparse(&self) -> bool;
    /// Give back half the capacity (or what the entries allow).
    fn halve(&mut self);
}

fn is_sparse(len: usize, capacity: usize) -> bool {
    capacity >= MIN_CAPACITY && len <= capacity / 4
}

impl<K: Eq + Hash, V> Sparse for HashMap<K, V> {
    fn sparse(&self) -> bool {
        is_sparse(self.len(), self.capacity())
    }
    fn halve(&mut self) {
        self.shrink_to(self.capacity() / 2);
    }
}

impl<K: Eq + Hash> Sparse for HashSet<K> {
    fn sparse(&self) -> bool {
        is_sparse(self.len(), self.capacity())
    }
    fn halve(&mut self) {
        self.shrink_to(self.capacity() / 2);
    }
}

impl<T> Sparse for slab::Slab<T> {
    fn sparse(&self) -> bool {
        is_sparse(self.len(), self.capacity())
    }
    /// A slab's keys are handed out, so entries cannot move: only the
    /// vacant tail is given back (all of it once the slab is empty).
    fn halve(&mut self) {
        self.shrink_to_fit();
    }
}

/// Halve `table`'s room if at most a quarter of it is used.
pub fn shrink_if_sparse(table: &mut impl Sparse) {
    if table.sparse() {
        table.halve();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_map_gives_back_its_room_step_by_step() {
        let mut map: HashMap<u32, u32> = (0..10_000).map(|i| (i, i)).collect();
        let full = map.capacity();
        for i in 0..10_000 {
            map.remove(&i);
            shrink_if_sparse(&mut map);
        }
        assert!(
            map.capacity() < MIN_CAPACITY * 2,
            "{} of {full}",
            map.capacity()
        );
    }

    #[test]
    fn a_busy_map_keeps_its_room() {
        let mut map: HashMap<u32, u32> = (0..1000).map(|i| (i, i)).collect();
        let cap = map.capacity();
        map.remove(&0);
        shrink_if_sparse(&mut map);
        // (A removal may leave a tombstone, which the capacity figure
        // counts as used: only check that nothing was halved.)
        assert!(map.capacity() + 1 >= cap, "{} of {cap}", map.capacity());
    }

    #[test]
    fn an_emptied_slab_gives_back_everything() {
        let mut slab = slab::Slab::new();
        let keys: Vec<usize> = (0..1000).map(|i| slab.insert(i)).collect();
        for k in keys {
            slab.remove(k);
            shrink_if_sparse(&mut slab);
        }
        assert_eq!(slab.capacity(), 0);
    }
}
