//! Cursors: ordered traversal of one bucket's B+tree, over mapped pages and, inside a write
//! transaction, over the nodes that transaction has copied and changed.
//!
//! A cursor keeps a stack from the bucket's root to the current leaf: at each level the page
//! or node and the index of the element taken. Moving past the end of a leaf climbs the stack
//! to the nearest level with elements left and descends again; empty leaves (possible in a
//! write transaction after deletes) are stepped over.

use crate::error::{Error, Result};
use crate::layout::BUCKET_LEAF_FLAG;
use crate::node::Node;
use crate::page::PageView;
use crate::BucketId;

/// One entry of a bucket. For a sub-bucket, `value` is the raw bucket value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub is_bucket: bool,
}

/// A level of the tree: a mapped page or a transaction's node.
#[derive(Clone, Copy)]
pub(crate) enum NodeRef<'a> {
    Page(PageView<'a>),
    Node(&'a Node),
}

impl<'a> NodeRef<'a> {
    pub(crate) fn is_leaf(&self) -> bool {
        match self {
            NodeRef::Page(p) => p.is_leaf(),
            NodeRef::Node(n) => n.is_leaf,
        }
    }

    pub(crate) fn count(&self) -> usize {
        match self {
            NodeRef::Page(p) => p.count(),
            NodeRef::Node(n) => n.inodes.len(),
        }
    }

    /// Leaf element `i` as an item. `i` must be below `count()`.
    pub(crate) fn item(&self, i: usize) -> Result<Item<'a>> {
        let (flags, key, value) = match self {
            NodeRef::Page(p) => p.leaf(i)?,
            NodeRef::Node(n) => {
                let inode = &n.inodes[i];
                (inode.flags, inode.key.as_slice(), inode.value.as_slice())
            }
        };
        Ok(Item {
            key,
            value,
            is_bucket: flags & BUCKET_LEAF_FLAG != 0,
        })
    }

    /// Child page id of branch element `i`.
    pub(crate) fn child(&self, i: usize) -> Result<u64> {
        match self {
            NodeRef::Page(p) => {
                if i >= p.count() {
                    return Err(p.bad("branch page has no elements"));
                }
                Ok(p.branch(i)?.1)
            }
            NodeRef::Node(n) => match n.inodes.get(i) {
                Some(inode) => Ok(inode.pgid),
                None => Err(Error::Corrupted {
                    file: std::path::PathBuf::new(),
                    offset: 0,
                    what: crate::error::Corruption::BadPage("branch node has no elements".into()),
                }),
            },
        }
    }

    /// First index whose key is >= `key`, and whether it matches exactly.
    pub(crate) fn search(&self, key: &[u8]) -> Result<(usize, bool)> {
        match self {
            NodeRef::Page(p) => p.search(key),
            NodeRef::Node(n) => Ok(n.search(key)),
        }
    }
}

/// What a cursor reads a bucket's tree through.
pub(crate) trait TreeSource {
    /// The root page or node of `bucket`.
    fn root_ref(&self, bucket: BucketId) -> Result<NodeRef<'_>>;
    /// Page `pgid` of `bucket`, or the node this transaction made of it.
    fn child_ref(&self, bucket: BucketId, pgid: u64) -> Result<NodeRef<'_>>;
    /// The data file, for error messages.
    fn file_path(&self) -> &std::path::Path;
    /// The file's page size in bytes.
    fn page_size(&self) -> u64;
    /// Whether `bucket` is stored inline in its parent's value.
    fn is_inline(&self, bucket: BucketId) -> bool;
}

#[derive(Clone, Copy)]
struct Level<'a> {
    node: NodeRef<'a>,
    index: usize,
}

/// An ordered cursor over one bucket. Obtained from [`crate::TxRead::cursor`].
pub struct Cursor<'a> {
    src: &'a dyn TreeSource,
    bucket: BucketId,
    stack: Vec<Level<'a>>,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a dyn TreeSource, bucket: BucketId) -> Cursor<'a> {
        Cursor {
            src,
            bucket,
            stack: Vec::with_capacity(8),
        }
    }

    /// Moves to the first key.
    pub fn first(&mut self) -> Result<Option<Item<'a>>> {
        self.stack.clear();
        let root = self.src.root_ref(self.bucket)?;
        self.stack.push(Level {
            node: root,
            index: 0,
        });
        self.descend_first()?;
        if self.top_count() == 0 {
            return self.next();
        }
        self.current()
    }

    /// Moves to the last key.
    pub fn last(&mut self) -> Result<Option<Item<'a>>> {
        self.stack.clear();
        let root = self.src.root_ref(self.bucket)?;
        self.stack.push(Level {
            node: root,
            index: root.count().saturating_sub(1),
        });
        self.descend_last()?;
        if self.top_count() == 0 {
            return self.prev();
        }
        self.current()
    }

    /// Moves to the first key >= `key`.
    pub fn seek(&mut self, key: &[u8]) -> Result<Option<Item<'a>>> {
        self.search(key)?;
        let top = self
            .stack
            .last()
            .expect("search leaves a leaf on the stack");
        if top.index >= top.node.count() {
            return self.next();
        }
        self.current()
    }

    /// Moves to the next key.
    #[allow(clippy::should_implement_trait)] // fallible, and tied to the cursor's borrow
    pub fn next(&mut self) -> Result<Option<Item<'a>>> {
        loop {
            let mut level = None;
            for i in (0..self.stack.len()).rev() {
                let l = &mut self.stack[i];
                if l.index + 1 < l.node.count() {
                    l.index += 1;
                    level = Some(i);
                    break;
                }
            }
            let Some(i) = level else {
                return Ok(None);
            };
            self.stack.truncate(i + 1);
            self.descend_first()?;
            if self.top_count() == 0 {
                continue;
            }
            return self.current();
        }
    }

    /// Moves to the previous key.
    pub fn prev(&mut self) -> Result<Option<Item<'a>>> {
        loop {
            while let Some(l) = self.stack.last_mut() {
                if l.index > 0 && l.node.count() > 0 {
                    l.index = (l.index - 1).min(l.node.count() - 1);
                    break;
                }
                self.stack.pop();
            }
            if self.stack.is_empty() {
                return Ok(None);
            }
            self.descend_last()?;
            if self.top_count() == 0 {
                continue;
            }
            return self.current();
        }
    }

    /// Positions the stack where `key` is or would be inserted, without stepping past the
    /// end of the leaf. Returns whether the key exists and its flags-derived item.
    pub(crate) fn search(&mut self, key: &[u8]) -> Result<Option<Item<'a>>> {
        self.stack.clear();
        let mut node = self.src.root_ref(self.bucket)?;
        loop {
            let (mut index, exact) = node.search(key)?;
            if node.is_leaf() {
                self.stack.push(Level { node, index });
                if exact {
                    return Ok(Some(node.item(index)?));
                }
                return Ok(None);
            }
            if !exact && index > 0 {
                index -= 1;
            }
            self.stack.push(Level { node, index });
            node = self.child(node, index)?;
        }
    }

    fn child(&self, node: NodeRef<'a>, index: usize) -> Result<NodeRef<'a>> {
        if self.stack.len() > MAX_TREE_DEPTH {
            return Err(too_deep(self.src.file_path()));
        }
        let pgid = node.child(index)?;
        self.src.child_ref(self.bucket, pgid)
    }

    fn top_count(&self) -> usize {
        self.stack.last().map_or(0, |l| l.node.count())
    }

    fn descend_first(&mut self) -> Result<()> {
        loop {
            let top = *self.stack.last().expect("stack not empty");
            if top.node.is_leaf() {
                return Ok(());
            }
            let child = self.child(top.node, top.index)?;
            self.stack.push(Level {
                node: child,
                index: 0,
            });
        }
    }

    fn descend_last(&mut self) -> Result<()> {
        loop {
            let top = *self.stack.last().expect("stack not empty");
            if top.node.is_leaf() {
                return Ok(());
            }
            let child = self.child(top.node, top.index)?;
            let index = child.count().saturating_sub(1);
            self.stack.push(Level { node: child, index });
        }
    }

    fn current(&self) -> Result<Option<Item<'a>>> {
        match self.stack.last() {
            Some(l) if l.index < l.node.count() => Ok(Some(l.node.item(l.index)?)),
            _ => Ok(None),
        }
    }
}

/// Finds `key` in `bucket` by descending from the root, without a cursor's stack: the point
/// lookup path, which allocates nothing.
pub(crate) fn lookup<'a>(
    src: &'a dyn TreeSource,
    bucket: BucketId,
    key: &[u8],
) -> Result<Option<Item<'a>>> {
    let mut node = src.root_ref(bucket)?;
    for _ in 0..=MAX_TREE_DEPTH {
        let (index, exact) = node.search(key)?;
        if node.is_leaf() {
            return if exact {
                Ok(Some(node.item(index)?))
            } else {
                Ok(None)
            };
        }
        let index = if !exact && index > 0 {
            index - 1
        } else {
            index
        };
        node = src.child_ref(bucket, node.child(index)?)?;
    }
    Err(too_deep(src.file_path()))
}

/// Element indices from a bucket's root to a leaf.
pub(crate) struct TreePath {
    indices: [usize; MAX_TREE_DEPTH + 1],
    len: usize,
}

impl TreePath {
    pub(crate) fn levels(&self) -> &[usize] {
        &self.indices[..self.len]
    }

    /// The index in the leaf.
    pub(crate) fn leaf_index(&self) -> usize {
        self.indices[self.len - 1]
    }
}

/// Where `key` is, or would be inserted, in `bucket`: the path of indices (the leaf index
/// may equal the leaf's count) and the item if the key exists. Allocates nothing.
pub(crate) fn locate<'a>(
    src: &'a dyn TreeSource,
    bucket: BucketId,
    key: &[u8],
) -> Result<(TreePath, Option<Item<'a>>)> {
    let mut path = TreePath {
        indices: [0; MAX_TREE_DEPTH + 1],
        len: 0,
    };
    let mut node = src.root_ref(bucket)?;
    while path.len <= MAX_TREE_DEPTH {
        let (index, exact) = node.search(key)?;
        if node.is_leaf() {
            path.indices[path.len] = index;
            path.len += 1;
            let item = if exact { Some(node.item(index)?) } else { None };
            return Ok((path, item));
        }
        let index = if !exact && index > 0 {
            index - 1
        } else {
            index
        };
        path.indices[path.len] = index;
        path.len += 1;
        node = src.child_ref(bucket, node.child(index)?)?;
    }
    Err(too_deep(src.file_path()))
}

/// Depth guard for tree walks over untrusted files: deeper than this is a cycle.
pub(crate) const MAX_TREE_DEPTH: usize = 64;

pub(crate) fn too_deep(path: &std::path::Path) -> Error {
    Error::Corrupted {
        file: path.to_path_buf(),
        offset: 0,
        what: crate::error::Corruption::BadPage(format!(
            "tree deeper than {MAX_TREE_DEPTH} levels (a page cycle)"
        )),
    }
}
