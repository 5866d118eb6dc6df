//! Go 1.19's `sort.Sort`, reproduced so sorted range results order ties as etcd does.
//!
//! etcd 3.4.23 (built with Go 1.19) sorts range results by version, create or mod revision, or
//! value with `sort.Sort`, which is not stable: keys that tie on the sort target come out in an
//! order fixed by the algorithm, a pattern-defeating quicksort (insertion sort up to 12
//! elements, median-of-three or Tukey-ninther pivots, a partial insertion sort for nearly
//! sorted input, a deterministic xorshift shuffle to break bad patterns, heapsort after too
//! many bad pivots). Clients see that order, so this module performs the same comparisons and
//! swaps in the same sequence; `std`'s sorts would order ties differently once more than 12
//! keys tie. `less` plays the role of `Interface.Less`; a descending sort is the same
//! algorithm with `less` flipped, as Go's `sort.Reverse` is. Pure.

/// Sorts `data` exactly as Go 1.19's `sort.Sort` with `Less(i, j) = less(&data[i], &data[j])`.
pub fn sort_by<T>(data: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let n = data.len();
    if n <= 1 {
        return;
    }
    let limit = bit_len(n);
    let mut s = Sorter {
        data,
        less: &mut less,
    };
    s.pdqsort(0, n, limit);
}

/// Go's `bits.Len`: the number of bits needed to represent `x`.
fn bit_len(x: usize) -> usize {
    (usize::BITS - x.leading_zeros()) as usize
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hint {
    Unknown,
    Increasing,
    Decreasing,
}

const MAX_INSERTION: usize = 12;
const SHORTEST_NINTHER: usize = 50;
const MAX_SWAPS: usize = 4 * 3;
const PARTIAL_MAX_STEPS: usize = 5;
const SHORTEST_SHIFTING: usize = 50;

struct Sorter<'d, 'l, T, L: FnMut(&T, &T) -> bool> {
    data: &'d mut [T],
    less: &'l mut L,
}

impl<T, L: FnMut(&T, &T) -> bool> Sorter<'_, '_, T, L> {
    fn less(&mut self, i: usize, j: usize) -> bool {
        (self.less)(&self.data[i], &self.data[j])
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.data.swap(i, j);
    }

    fn insertion_sort(&mut self, a: usize, b: usize) {
        for i in a + 1..b {
            let mut j = i;
            while j > a && self.less(j, j - 1) {
                self.swap(j, j - 1);
                j -= 1;
            }
        }
    }

    fn sift_down(&mut self, lo: usize, hi: usize, first: usize) {
        let mut root = lo;
        loop {
            let mut child = 2 * root + 1;
            if child >= hi {
                return;
            }
            if child + 1 < hi && self.less(first + child, first + child + 1) {
                child += 1;
            }
            if !self.less(first + root, first + child) {
                return;
            }
            self.swap(first + root, first + child);
            root = child;
        }
    }

    fn heap_sort(&mut self, a: usize, b: usize) {
        let first = a;
        let hi = b - a;
        for i in (0..=(hi.saturating_sub(1)) / 2).rev() {
            self.sift_down(i, hi, first);
        }
        for i in (0..hi).rev() {
            self.swap(first, first + i);
            self.sift_down(0, i, first);
        }
    }

    fn pdqsort(&mut self, mut a: usize, mut b: usize, mut limit: usize) {
        let mut was_balanced = true;
        let mut was_partitioned = true;
        loop {
            let length = b - a;
            if length <= MAX_INSERTION {
                self.insertion_sort(a, b);
                return;
            }
            if limit == 0 {
                self.heap_sort(a, b);
                return;
            }
            if !was_balanced {
                self.break_patterns(a, b);
                limit -= 1;
            }
            let (mut pivot, mut hint) = self.choose_pivot(a, b);
            if hint == Hint::Decreasing {
                self.reverse_range(a, b);
                pivot = (b - 1) - (pivot - a);
                hint = Hint::Increasing;
            }
            if was_balanced
                && was_partitioned
                && hint == Hint::Increasing
                && self.partial_insertion_sort(a, b)
            {
                return;
            }
            if a > 0 && !self.less(a - 1, pivot) {
                a = self.partition_equal(a, b, pivot);
                continue;
            }
            let (mid, already_partitioned) = self.partition(a, b, pivot);
            was_partitioned = already_partitioned;
            let (left_len, right_len) = (mid - a, b - mid);
            let balance_threshold = length / 8;
            if left_len < right_len {
                was_balanced = left_len >= balance_threshold;
                self.pdqsort(a, mid, limit);
                a = mid + 1;
            } else {
                was_balanced = right_len >= balance_threshold;
                self.pdqsort(mid + 1, b, limit);
                b = mid;
            }
        }
    }

    /// Go's `partition`; indices are kept as `isize` where Go's may step below `a`.
    fn partition(&mut self, a: usize, b: usize, pivot: usize) -> (usize, bool) {
        self.swap(a, pivot);
        let (mut i, mut j) = (a as isize + 1, b as isize - 1);
        while i <= j && self.less(i as usize, a) {
            i += 1;
        }
        while i <= j && !self.less(j as usize, a) {
            j -= 1;
        }
        if i > j {
            self.swap(j as usize, a);
            return (j as usize, true);
        }
        self.swap(i as usize, j as usize);
        i += 1;
        j -= 1;
        loop {
            while i <= j && self.less(i as usize, a) {
                i += 1;
            }
            while i <= j && !self.less(j as usize, a) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i as usize, j as usize);
            i += 1;
            j -= 1;
        }
        self.swap(j as usize, a);
        (j as usize, false)
    }

    fn partition_equal(&mut self, a: usize, b: usize, pivot: usize) -> usize {
        self.swap(a, pivot);
        let (mut i, mut j) = (a as isize + 1, b as isize - 1);
        loop {
            while i <= j && !self.less(a, i as usize) {
                i += 1;
            }
            while i <= j && self.less(a, j as usize) {
                j -= 1;
            }
            if i > j {
                break;
            }
            self.swap(i as usize, j as usize);
            i += 1;
            j -= 1;
        }
        i as usize
    }

    fn partial_insertion_sort(&mut self, a: usize, b: usize) -> bool {
        let mut i = a + 1;
        for _ in 0..PARTIAL_MAX_STEPS {
            while i < b && !self.less(i, i - 1) {
                i += 1;
            }
            if i == b {
                return true;
            }
            if b - a < SHORTEST_SHIFTING {
                return false;
            }
            self.swap(i, i - 1);
            if i - a >= 2 {
                let mut j = i - 1;
                while j >= 1 {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                    j -= 1;
                }
            }
            if b - i >= 2 {
                for j in i + 1..b {
                    if !self.less(j, j - 1) {
                        break;
                    }
                    self.swap(j, j - 1);
                }
            }
        }
        false
    }

    fn break_patterns(&mut self, a: usize, b: usize) {
        let length = b - a;
        if length >= 8 {
            let mut random = length as u64;
            let modulus = 1usize << bit_len(length);
            let middle = a + (length / 4) * 2;
            for idx in middle - 1..=middle + 1 {
                random ^= random << 13;
                random ^= random >> 17;
                random ^= random << 5;
                let mut other = (random as usize) & (modulus - 1);
                if other >= length {
                    other -= length;
                }
                self.swap(idx, a + other);
            }
        }
    }

    fn choose_pivot(&mut self, a: usize, b: usize) -> (usize, Hint) {
        let l = b - a;
        let mut swaps = 0;
        let mut i = a + l / 4;
        let mut j = a + l / 4 * 2;
        let mut k = a + l / 4 * 3;
        if l >= 8 {
            if l >= SHORTEST_NINTHER {
                i = self.median(i - 1, i, i + 1, &mut swaps);
                j = self.median(j - 1, j, j + 1, &mut swaps);
                k = self.median(k - 1, k, k + 1, &mut swaps);
            }
            j = self.median(i, j, k, &mut swaps);
        }
        match swaps {
            0 => (j, Hint::Increasing),
            MAX_SWAPS => (j, Hint::Decreasing),
            _ => (j, Hint::Unknown),
        }
    }

    fn order2(&mut self, a: usize, b: usize, swaps: &mut usize) -> (usize, usize) {
        if self.less(b, a) {
            *swaps += 1;
            (b, a)
        } else {
            (a, b)
        }
    }

    fn median(&mut self, a: usize, b: usize, c: usize, swaps: &mut usize) -> usize {
        let (a, b) = self.order2(a, b, swaps);
        let (b, c) = self.order2(b, c, swaps);
        let _ = c;
        let (_, b) = self.order2(a, b, swaps);
        b
    }

    fn reverse_range(&mut self, a: usize, b: usize) {
        let (mut i, mut j) = (a, b - 1);
        while i < j {
            self.swap(i, j);
            i += 1;
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Orders produced by Go 1.19.8's `sort.Sort` (checked once with a Go program) for inputs
    /// `(tie_key, position)`; `less` compares `tie_key` only, so the positions show how ties
    /// come out.
    #[test]
    fn ties_come_out_as_in_go() {
        // Proves the tie order equals Go's for inputs long enough to leave insertion sort.
        for (keys, want) in GO_VECTORS {
            let mut data: Vec<(u32, usize)> =
                keys.iter().enumerate().map(|(p, &k)| (k, p)).collect();
            sort_by(&mut data, |x, y| x.0 < y.0);
            let got: Vec<usize> = data.iter().map(|&(_, p)| p).collect();
            assert_eq!(&got, want, "keys {keys:?}");
        }
    }

    #[test]
    fn sorts_like_std_on_distinct_keys() {
        // Proves the result is sorted for many shapes (sorted, reversed, sawtooth, random).
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for n in [0usize, 1, 2, 13, 49, 50, 51, 200, 1000] {
            let shapes: Vec<Vec<u64>> = vec![
                (0..n as u64).collect(),
                (0..n as u64).rev().collect(),
                (0..n as u64).map(|x| x % 7).collect(),
                (0..n)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed % 100
                    })
                    .collect(),
            ];
            for mut data in shapes {
                let mut want = data.clone();
                want.sort_unstable();
                sort_by(&mut data, |a, b| a < b);
                assert_eq!(data, want);
            }
        }
    }

    /// Generated once by a Go 1.19.8 program calling sort.Sort; see ties_come_out_as_in_go.
    const GO_VECTORS: &[(&[u32], &[usize])] = &[
        (
            &[1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0],
            &[6, 3, 4, 9, 11, 12, 1, 2, 5, 0, 7, 8, 10],
        ),
        (
            &[0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 1, 0, 1, 0, 2, 1, 1, 2, 1, 1],
            &[
                8, 13, 2, 11, 4, 0, 6, 10, 7, 5, 3, 12, 1, 15, 16, 18, 19, 9, 14, 17,
            ],
        ),
        (
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0, 0, 0,
            ],
            &[
                0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
            ],
        ),
        (
            &[
                1, 1, 3, 3, 1, 2, 0, 0, 1, 3, 0, 3, 3, 1, 2, 1, 1, 0, 2, 0, 2, 1, 3, 2, 0, 0, 1, 1,
                0, 0, 1, 2, 0, 2, 1, 0, 2, 3, 1, 3, 0, 2, 0, 0, 0, 3, 3, 1, 1,
            ],
            &[
                6, 32, 28, 25, 24, 44, 29, 7, 17, 43, 10, 42, 40, 35, 19, 38, 16, 15, 0, 30, 13,
                21, 34, 8, 4, 47, 26, 27, 48, 1, 36, 31, 23, 33, 5, 20, 18, 41, 14, 39, 12, 37, 11,
                9, 22, 45, 46, 3, 2,
            ],
        ),
        (
            &[
                0, 2, 1, 2, 1, 1, 0, 1, 2, 1, 2, 0, 2, 1, 1, 1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2,
                2, 2, 0, 0, 0, 0, 2, 2, 1, 2, 1, 0, 1, 0, 1, 0, 2, 0, 0, 2, 1, 0,
            ],
            &[
                0, 49, 46, 45, 43, 41, 6, 39, 33, 32, 31, 11, 30, 26, 25, 23, 9, 17, 18, 48, 2, 21,
                22, 15, 24, 14, 13, 4, 42, 5, 40, 7, 38, 36, 28, 12, 8, 37, 34, 10, 35, 29, 16, 27,
                44, 3, 20, 47, 19, 1,
            ],
        ),
        (
            &[
                4, 1, 0, 1, 1, 4, 0, 1, 4, 0, 3, 1, 0, 2, 0, 3, 1, 3, 3, 1, 1, 4, 3, 4, 1, 4, 2, 2,
                2, 2, 3, 2, 0, 3, 3, 0, 0, 0, 2, 3, 2, 0, 3, 3, 4, 3, 1, 3, 0, 2, 3, 1, 0, 1, 2, 3,
                0, 3, 3, 4, 2, 4, 1, 3,
            ],
            &[
                12, 2, 52, 14, 32, 36, 6, 37, 56, 9, 41, 48, 35, 7, 3, 51, 16, 11, 46, 19, 20, 53,
                1, 62, 24, 4, 49, 38, 28, 29, 60, 31, 26, 54, 13, 27, 40, 45, 18, 39, 63, 30, 42,
                43, 22, 58, 55, 47, 17, 57, 50, 15, 34, 10, 33, 44, 8, 0, 25, 59, 21, 61, 5, 23,
            ],
        ),
        (
            &[
                0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0,
                0, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1,
                0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1,
                1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0,
            ],
            &[
                80, 0, 56, 99, 97, 5, 6, 96, 8, 9, 10, 11, 12, 95, 93, 92, 91, 17, 18, 19, 20, 21,
                87, 82, 24, 81, 2, 1, 61, 79, 30, 78, 32, 74, 71, 35, 70, 68, 67, 65, 40, 64, 42,
                43, 28, 60, 58, 47, 48, 27, 57, 51, 52, 53, 49, 55, 54, 50, 46, 59, 45, 44, 62, 63,
                41, 39, 66, 38, 37, 69, 36, 34, 72, 73, 33, 75, 76, 77, 31, 29, 26, 25, 23, 83, 84,
                85, 86, 22, 88, 89, 90, 16, 15, 14, 94, 13, 7, 4, 98, 3,
            ],
        ),
        (
            &[
                6, 2, 4, 2, 1, 6, 2, 3, 1, 8, 7, 5, 5, 9, 8, 6, 1, 6, 8, 0, 2, 4, 7, 2, 6, 5, 5, 8,
                8, 3, 2, 4, 3, 3, 9, 5, 1, 8, 3, 8, 4, 9, 8, 0, 6, 6, 9, 9, 5, 2, 0, 4, 3, 7, 0, 8,
                1, 3, 9, 6, 2, 7, 3, 1, 0, 5, 5, 4, 8, 9, 0, 0, 2, 0, 1, 9, 6, 4, 6, 2, 2, 1, 0, 3,
                0, 5, 2, 5, 3, 8, 6, 7, 9, 0, 0, 8, 6, 5, 5, 1, 7, 6, 3, 1, 9, 7, 9, 1, 2, 0, 2, 5,
                7, 9, 2, 6, 8, 1, 7, 6, 5, 7, 1, 6, 8, 4, 8, 6, 8, 6, 9, 6, 4, 4, 4, 3, 1, 5, 6, 7,
                1, 9, 4, 1, 4, 3, 7, 1, 5, 5,
            ],
            &[
                73, 109, 71, 94, 82, 84, 50, 43, 70, 64, 19, 93, 54, 8, 74, 63, 16, 117, 103, 122,
                136, 99, 56, 140, 107, 36, 143, 4, 81, 147, 114, 79, 30, 49, 72, 80, 86, 3, 20,
                108, 60, 110, 1, 23, 6, 38, 88, 32, 145, 29, 83, 33, 52, 7, 135, 62, 102, 57, 132,
                125, 40, 133, 134, 21, 51, 142, 144, 67, 31, 77, 2, 97, 120, 35, 149, 148, 11, 12,
                111, 48, 66, 137, 98, 65, 26, 85, 25, 87, 96, 131, 90, 119, 76, 24, 115, 78, 0,
                138, 5, 45, 123, 101, 59, 44, 129, 15, 127, 17, 105, 61, 100, 139, 112, 10, 146,
                22, 121, 53, 118, 91, 14, 42, 37, 68, 124, 28, 126, 27, 128, 89, 95, 18, 39, 9, 55,
                116, 41, 58, 46, 130, 92, 141, 104, 106, 34, 13, 69, 47, 75, 113,
            ],
        ),
        (
            &[
                0, 0, 2, 2, 0, 0, 0, 0, 2, 0, 1, 2, 2, 1, 2, 0, 2, 2, 2, 2, 2, 2, 2, 0, 1, 1, 0, 1,
                0, 0, 2, 2, 2, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 2, 2, 2, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0,
                0, 2, 1, 1, 1, 1, 1, 2, 1, 2, 2, 2, 2, 1, 1, 2, 1, 1, 1, 1, 0, 2, 0, 2, 0, 2, 1, 2,
                1, 2, 1, 2, 0, 2, 2, 1, 2, 2, 1, 1, 0, 1, 2, 2, 2, 1, 1, 2, 0, 2, 0, 0, 2, 2, 2, 2,
                0, 1, 2, 2, 0, 2, 2, 1, 1, 1, 0, 2, 1, 1, 0, 1, 0, 1, 2, 0, 0, 1, 0, 2, 2, 0, 0, 2,
                0, 2, 1, 0, 0, 2, 2, 1, 1, 0, 2, 0, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 2, 2,
                0, 2, 0, 2, 0, 2, 0, 2, 1, 0, 0, 0, 1, 0, 2, 0, 0, 1, 2, 0, 0, 1, 0, 2, 2, 1, 1, 2,
                0, 1, 1, 2,
            ],
            &[
                151, 76, 196, 190, 4, 5, 6, 7, 188, 9, 187, 184, 183, 181, 179, 15, 178, 177, 174,
                170, 168, 159, 157, 23, 154, 153, 26, 0, 28, 29, 149, 144, 143, 140, 34, 35, 36,
                138, 38, 137, 134, 132, 131, 128, 126, 122, 116, 47, 112, 107, 50, 51, 106, 53,
                104, 55, 56, 1, 172, 96, 88, 80, 78, 13, 41, 198, 197, 194, 193, 69, 70, 189, 72,
                73, 74, 75, 10, 185, 62, 176, 61, 165, 82, 164, 84, 163, 86, 162, 60, 161, 160, 91,
                158, 156, 94, 95, 59, 97, 58, 155, 180, 101, 102, 24, 54, 25, 52, 49, 152, 27, 148,
                147, 48, 113, 142, 33, 46, 37, 39, 119, 120, 121, 40, 133, 124, 125, 64, 127, 42,
                129, 83, 135, 44, 123, 45, 81, 136, 118, 117, 139, 166, 141, 114, 32, 31, 145, 146,
                111, 110, 30, 150, 109, 108, 105, 103, 57, 93, 22, 92, 130, 90, 89, 87, 85, 21, 43,
                115, 167, 20, 169, 19, 171, 98, 173, 18, 175, 79, 17, 16, 14, 100, 99, 182, 12, 11,
                77, 186, 63, 8, 71, 3, 191, 192, 68, 67, 195, 2, 66, 65, 199,
            ],
        ),
        (
            &[
                20, 19, 19, 19, 18, 18, 18, 17, 17, 17, 16, 16, 16, 15, 15, 15, 14, 14, 14, 13, 13,
                13, 12, 12, 12, 11, 11, 11, 10, 10, 10, 9, 9, 9, 8, 8, 8, 7, 7, 7, 6, 6, 6, 5, 5,
                5, 4, 4, 4, 3, 3, 3, 2, 2, 2, 1, 1, 1, 0, 0,
            ],
            &[
                59, 58, 57, 56, 55, 54, 53, 52, 49, 51, 50, 46, 47, 48, 43, 45, 44, 40, 42, 41, 39,
                38, 37, 36, 35, 34, 31, 33, 32, 29, 30, 28, 27, 26, 25, 24, 23, 22, 19, 21, 20, 16,
                17, 18, 13, 15, 14, 10, 12, 11, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
            ],
        ),
    ];
}
