//! The commitment: a blake3 Merkle tree over the rows of every product.
//!
//! Leaf `(j, i)` (position `j · n + i`) is `blake3::keyed_hash(LEAF_KEY,
//! row bytes)`, the row being `n` int32 values, little-endian. A parent is
//! `blake3::keyed_hash(NODE_KEY, left ‖ right)`. A level with an odd number
//! of nodes carries its last node up unchanged (no duplication, so no two
//! leaf lists share a root). The keys separate leaves from nodes.

/// A 32-byte blake3 digest.
pub type Hash = [u8; 32];

/// `blake3("akihabara pow v1 leaf")`: the key of leaf hashes.
pub fn leaf_key() -> Hash {
    *blake3::hash(b"akihabara pow v1 leaf").as_bytes()
}

/// `blake3("akihabara pow v1 node")`: the key of inner nodes.
pub fn node_key() -> Hash {
    *blake3::hash(b"akihabara pow v1 node").as_bytes()
}

/// The leaf of one row of a product.
///
/// ```
/// let leaf = akihabara_gpu::merkle::leaf(&[1, -1]);
/// let bytes = [1u8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
/// let key = akihabara_gpu::merkle::leaf_key();
/// assert_eq!(leaf, *blake3::keyed_hash(&key, &bytes).as_bytes());
/// ```
pub fn leaf(row: &[i32]) -> Hash {
    let mut h = blake3::Hasher::new_keyed(&leaf_key());
    let mut buf = [0u8; 4096];
    for chunk in row.chunks(1024) {
        for (o, v) in buf.chunks_exact_mut(4).zip(chunk) {
            o.copy_from_slice(&v.to_le_bytes());
        }
        h.update(&buf[..chunk.len() * 4]);
    }
    *h.finalize().as_bytes()
}

/// A parent node.
pub fn node(key: &Hash, left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left);
    buf[32..].copy_from_slice(right);
    *blake3::keyed_hash(key, &buf).as_bytes()
}

/// A whole tree, every level kept (to answer openings).
#[derive(Clone, Debug)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// Builds the tree over `leaves` (at least one).
    pub fn new(leaves: Vec<Hash>) -> Tree {
        let key = node_key();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let up = below
                .chunks(2)
                .map(|p| match p {
                    [l, r] => node(&key, l, r),
                    [one] => *one,
                    _ => unreachable!("chunks(2) yields one or two"),
                })
                .collect();
            levels.push(up);
        }
        Tree { levels }
    }

    /// A tree from levels built elsewhere (the CUDA prover's), leaves first.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn from_levels(levels: Vec<Vec<Hash>>) -> Tree {
        Tree { levels }
    }

    /// The root (the all-zero hash for an empty tree).
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or_default()
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether there are no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Leaf `index`.
    pub fn leaf(&self, index: usize) -> Option<Hash> {
        self.levels.first().and_then(|l| l.get(index)).copied()
    }

    /// All leaves, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// The siblings from leaf `index` up to the root (levels where the node
    /// is carried up have none).
    pub fn path(&self, index: usize) -> Option<Vec<Hash>> {
        if index >= self.len() {
            return None;
        }
        let mut i = index;
        let mut out = Vec::new();
        for level in &self.levels[..self.levels.len() - 1] {
            let sib = i ^ 1;
            if sib < level.len() {
                out.push(level[sib]);
            }
            i /= 2;
        }
        Some(out)
    }
}

/// Whether `path` leads from `leaf` at `index` of a tree with `leaves`
/// leaves to `root`. The path must have exactly the expected length.
pub fn verify_path(leaf: &Hash, index: u64, leaves: u64, path: &[Hash], root: &Hash) -> bool {
    if index >= leaves {
        return false;
    }
    let key = node_key();
    let (mut i, mut width, mut h) = (index, leaves, *leaf);
    let mut siblings = path.iter();
    while width > 1 {
        let sib = i ^ 1;
        if sib < width {
            let Some(s) = siblings.next() else {
                return false;
            };
            h = if i % 2 == 0 {
                node(&key, &h, s)
            } else {
                node(&key, s, &h)
            };
        }
        i /= 2;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && &h == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf(&[i as i32, -(i as i32)])).collect()
    }

    #[test]
    fn every_path_verifies_for_every_width() {
        for n in 1..=33usize {
            let t = Tree::new(leaves(n));
            let root = t.root();
            for i in 0..n {
                let p = t.path(i).expect("path");
                let l = t.leaf(i).expect("leaf");
                assert!(
                    verify_path(&l, i as u64, n as u64, &p, &root),
                    "n {n} i {i}"
                );
                assert!(!verify_path(&l, (i as u64 + 1) % n as u64, n as u64, &p, &root) || n == 1);
                let mut short = p.clone();
                if short.pop().is_some() {
                    assert!(!verify_path(&l, i as u64, n as u64, &short, &root));
                }
                let mut long = p.clone();
                long.push([0; 32]);
                assert!(!verify_path(&l, i as u64, n as u64, &long, &root));
            }
            assert!(t.path(n).is_none());
        }
    }

    #[test]
    fn one_leaf_is_its_own_root() {
        let t = Tree::new(leaves(1));
        assert_eq!(t.root(), leaves(1)[0]);
    }

    #[test]
    fn odd_levels_carry_up_without_duplication() {
        // [a, b, c] and [a, b, c, c] must differ (Bitcoin's duplicate flaw).
        let l = leaves(3);
        let mut l4 = l.clone();
        l4.push(l[2]);
        assert_ne!(Tree::new(l).root(), Tree::new(l4).root());
    }
}
