//! [`Ranked`]: a sorted sequence that is also indexed by rank, for the sorted sets' score order.
//!
//! The members sit in order in blocks of at most [`MAX`]: an insert or a removal finds its block by binary
//! search over the blocks' last members and moves the members of that one block, and the `k`-th member is found
//! by walking the blocks' lengths, not the members. `ZRANGE z 500000 500000` on a million members walks at most
//! about 16,000 lengths (with a `BTreeSet`, which has no ranks, it stepped through half a million
//! members under the shard's lock: 18 ms). Redis's skip list keeps spans for the same reason. A block under
//! [`MIN`] merges with a neighbour, so the blocks stay at least a quarter full whatever was removed.
//!
//! [`MAX`] is 128: `ZADD` of random members to a set growing to 140,000 cost 7,268 instructions a request
//! (callgrind, the whole server under `redis-benchmark -t zadd -P 16 -r 1000000`) against 7,392 with the
//! `BTreeSet`, 7,460 with blocks of 256 and 8,279 with blocks of 512 (each insert moves half a block).

use std::ops::Range;

/// The most members a block holds; one more splits it in two.
const MAX: usize = 128;
/// A block with fewer members than this (and a neighbour) is merged with it.
const MIN: usize = MAX / 4;

/// Members in ascending order, each at most once (as in a `BTreeSet`), found by value or by rank.
#[derive(Debug)]
pub(crate) struct Ranked<T> {
    /// Never an empty block; every member of a block is below every member of the next.
    blocks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Ranked<T> {
    fn default() -> Self {
        Ranked {
            blocks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord> Ranked<T> {
    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The block `x` belongs in: the first whose last member is not below it (the last block past them all).
    fn block_of(&self, x: &T) -> usize {
        let b = self
            .blocks
            .partition_point(|blk| blk.last().is_some_and(|last| last < x));
        b.min(self.blocks.len().saturating_sub(1))
    }

    /// Adds `x`; false (and nothing changed) if it is there.
    pub(crate) fn insert(&mut self, x: T) -> bool {
        if self.blocks.is_empty() {
            self.blocks.push(vec![x]);
            self.len = 1;
            return true;
        }
        let b = self.block_of(&x);
        let last_block = b + 1 == self.blocks.len();
        let blk = &mut self.blocks[b];
        let Err(i) = blk.binary_search(&x) else {
            return false;
        };
        let appended = last_block && i == blk.len();
        let prepended = b == 0 && i == 0;
        if blk.len() == blk.capacity() {
            // Grown by doubling, but never past what a block holds before it splits.
            let want = (blk.len() * 2).clamp(4, MAX + 1);
            blk.reserve_exact(want - blk.len());
        }
        blk.insert(i, x);
        self.len += 1;
        if blk.len() > MAX {
            // Members added in order (rising scores, as timestamps) leave full blocks behind them, not half ones.
            let at = match (appended, prepended) {
                (true, _) => MAX,
                (_, true) => 1,
                _ => blk.len() / 2,
            };
            self.split(b, at);
        }
        true
    }

    /// Moves the members of block `b` from `at` on to a new block after it; each keeps room for what it holds.
    fn split(&mut self, b: usize, at: usize) {
        let blk = &mut self.blocks[b];
        let tail: Vec<T> = blk.drain(at..).collect();
        fit(blk);
        self.blocks.insert(b + 1, tail);
    }

    /// Removes `x`; false if it was not there.
    pub(crate) fn remove(&mut self, x: &T) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_of(x);
        let Ok(i) = self.blocks[b].binary_search(x) else {
            return false;
        };
        self.blocks[b].remove(i);
        self.len -= 1;
        self.rebalance(b);
        true
    }

    /// Removes and returns the lowest member.
    pub(crate) fn pop_first(&mut self) -> Option<T> {
        let first = self.blocks.first_mut()?;
        let x = first.remove(0);
        self.len -= 1;
        self.rebalance(0);
        Some(x)
    }

    /// Removes and returns the highest member.
    pub(crate) fn pop_last(&mut self) -> Option<T> {
        let b = self.blocks.len().checked_sub(1)?;
        let x = self.blocks[b].pop()?;
        self.len -= 1;
        self.rebalance(b);
        Some(x)
    }

    /// The block holding rank `rank` (within `0..len`) and the rank's place in it.
    fn block_of_rank(&self, rank: usize) -> (usize, usize) {
        let (mut b, mut before) = (0, 0);
        while before + self.blocks[b].len() <= rank {
            before += self.blocks[b].len();
            b += 1;
        }
        (b, rank - before)
    }

    /// Removes the members of ranks `r` (within `0..len`) and returns them in order. The blocks wholly inside
    /// `r` leave in one move; only the two cut at its ends are drained member by member and rebalanced, so
    /// removing `m` members costs `m` moves, not `m` searches.
    pub(crate) fn drain_ranks(&mut self, r: Range<usize>) -> Vec<T> {
        if r.is_empty() {
            return Vec::new();
        }
        let (first, i) = self.block_of_rank(r.start);
        let (last, j) = self.block_of_rank(r.end - 1);
        let mut out = Vec::with_capacity(r.len());
        if first == last {
            out.extend(self.blocks[first].drain(i..=j));
            self.len -= out.len();
            self.rebalance(first);
            return out;
        }
        out.extend(self.blocks[first].drain(i..));
        out.extend(self.blocks.drain(first + 1..last).flatten());
        // The last block cut is now the one after the first.
        out.extend(self.blocks[first + 1].drain(..=j));
        self.len -= out.len();
        self.rebalance(first + 1);
        self.rebalance(first);
        out
    }

    /// Block `b` lost members: an empty block goes, and one under [`MIN`] is merged with a neighbour (and split
    /// in two again if the two hold more than [`MAX`]).
    fn rebalance(&mut self, b: usize) {
        let n = self.blocks[b].len();
        if n == 0 {
            self.blocks.remove(b);
            return;
        }
        if n >= MIN || self.blocks.len() == 1 {
            fit(&mut self.blocks[b]);
            return;
        }
        let left = if b + 1 < self.blocks.len() { b } else { b - 1 };
        let right = self.blocks.remove(left + 1);
        self.blocks[left].extend(right);
        match self.blocks[left].len() {
            n if n > MAX => self.split(left, n / 2),
            _ => fit(&mut self.blocks[left]),
        }
    }

    /// Every member, in order (`.rev()` for the other).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &T> {
        self.blocks.iter().flatten()
    }

    /// The rank of `x` (0 the lowest), if it is there: its place in its block after the lengths of the blocks
    /// before.
    pub(crate) fn rank(&self, x: &T) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        let b = self.block_of(x);
        let i = self.blocks[b].binary_search(x).ok()?;
        Some(self.blocks[..b].iter().map(Vec::len).sum::<usize>() + i)
    }

    /// How many members are `below` (a test that holds for a first part of the order and for none after it):
    /// the rank of the first member it does not hold for.
    pub(crate) fn count_below(&self, below: impl Fn(&T) -> bool) -> usize {
        let b = self
            .blocks
            .partition_point(|blk| blk.last().is_some_and(&below));
        let before: usize = self.blocks[..b].iter().map(Vec::len).sum();
        match self.blocks.get(b) {
            Some(blk) => before + blk.partition_point(&below),
            None => before,
        }
    }

    /// The members of ranks `r` (0 the lowest), in order; `r` within `0..len`.
    pub(crate) fn by_rank(&self, r: Range<usize>) -> impl Iterator<Item = &T> {
        // The block of rank `r.start`, found by the blocks' lengths.
        let (mut b, mut before) = (0, 0);
        while b < self.blocks.len() && before + self.blocks[b].len() <= r.start {
            before += self.blocks[b].len();
            b += 1;
        }
        self.blocks[b.min(self.blocks.len())..]
            .iter()
            .flatten()
            .skip(r.start - before)
            .take(r.len())
    }
}

/// A block mostly emptied gives its room back (at most twice what it holds is kept).
fn fit<T>(blk: &mut Vec<T>) {
    if blk.capacity() > 8 && blk.len() < blk.capacity() / 4 {
        blk.shrink_to(blk.len() * 2);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    impl<T: Ord> Ranked<T> {
        /// The invariants: no empty block, none over [`MAX`], members strictly rising across blocks, `len`
        /// their count.
        fn check(&self) {
            assert_eq!(self.len, self.blocks.iter().map(Vec::len).sum::<usize>());
            assert!(self.blocks.iter().all(|b| !b.is_empty() && b.len() <= MAX));
            assert!(self.iter().zip(self.iter().skip(1)).all(|(a, b)| a < b));
        }
    }

    /// splitmix64: the same sequence every run.
    fn rng(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce5_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Rank ranges drained from a set of 5,000 (within a block, across two, across many, the whole), each checked
    /// against the same range taken out of a sorted `Vec`, with the invariants after each.
    #[test]
    fn drained_rank_ranges_leave_what_a_sorted_list_would() {
        let (mut r, mut list) = (Ranked::default(), Vec::new());
        let mut seed = 11;
        while list.len() < 5000 {
            let x = rng(&mut seed) % 1_000_000;
            if r.insert(x) {
                list.push(x);
            }
        }
        list.sort_unstable();
        for _ in 0..300 {
            if list.is_empty() {
                break;
            }
            let a = (rng(&mut seed) as usize) % list.len();
            let span = match rng(&mut seed) % 4 {
                0 => 1,
                1 => (rng(&mut seed) % 10) as usize,
                2 => (rng(&mut seed) % 300) as usize,
                _ => (rng(&mut seed) % 40) as usize,
            };
            let b = (a + span).min(list.len());
            let want: Vec<u64> = list.drain(a..b).collect();
            assert_eq!(r.drain_ranks(a..b), want, "{a}..{b}");
            r.check();
            assert_eq!(r.iter().copied().collect::<Vec<_>>(), list);
        }
        let n = list.len();
        assert_eq!(r.drain_ranks(0..n), list);
        r.check();
        assert_eq!(r.len(), 0);
        assert!(r.insert(5) && r.rank(&5) == Some(0));
    }

    /// Random inserts, removals and pops, each checked against a `BTreeSet`, with every rank range read back,
    /// through growth past many splits and shrinking through merges.
    #[test]
    fn answers_as_a_btreeset_with_ranks_would() {
        let (mut r, mut set) = (Ranked::default(), BTreeSet::new());
        let mut seed = 7;
        for round in 0..40_000u32 {
            // Mostly growing for the first half, mostly shrinking for the second.
            let grow = if round < 20_000 { 7 } else { 3 };
            let x = rng(&mut seed) % 6000;
            match rng(&mut seed) % 10 {
                k if k < grow => assert_eq!(r.insert(x), set.insert(x)),
                7 => assert_eq!(r.pop_first(), set.pop_first()),
                8 => assert_eq!(r.pop_last(), set.pop_last()),
                _ => assert_eq!(r.remove(&x), set.remove(&x)),
            }
            assert_eq!(r.len(), set.len());
            if round % 1000 == 0 {
                r.check();
                let all: Vec<u64> = set.iter().copied().collect();
                assert!(r.iter().copied().eq(all.iter().copied()));
                assert!(r.iter().rev().copied().eq(all.iter().rev().copied()));
                for start in (0..all.len()).step_by(97) {
                    for len in [0, 1, 5, 600, all.len()] {
                        let end = (start + len).min(all.len());
                        let got: Vec<u64> = r.by_rank(start..end).copied().collect();
                        assert_eq!(got, all[start..end], "{start}..{end}");
                    }
                }
                for x in (0..6000).step_by(7) {
                    assert_eq!(r.rank(&x), all.binary_search(&x).ok(), "rank of {x}");
                    assert_eq!(r.count_below(|y| *y < x), all.partition_point(|y| *y < x));
                }
            }
        }
        r.check();
        while let Some(x) = set.pop_first() {
            assert_eq!(r.pop_first(), Some(x));
        }
        assert_eq!((r.len(), r.pop_last(), r.blocks.len()), (0, None, 0));
    }

    /// Members added in rising order fill their blocks (the sorted set of timestamps), and removing all but a
    /// few of them merges the blocks left nearly empty.
    #[test]
    fn blocks_stay_full_when_filled_in_order_and_merge_when_emptied() {
        let mut r = Ranked::default();
        for x in 0..100_000u32 {
            r.insert(x);
        }
        r.check();
        assert_eq!(r.blocks.len(), 100_000usize.div_ceil(MAX));
        for x in (0..100_000u32).filter(|x| x % 100 != 0) {
            assert!(r.remove(&x));
        }
        r.check();
        assert!(
            r.blocks.iter().filter(|b| b.len() < MIN).count() <= 1,
            "{} blocks for {} members",
            r.blocks.len(),
            r.len()
        );
        assert!(r.by_rank(500..501).eq([&50_000]));
    }
}
