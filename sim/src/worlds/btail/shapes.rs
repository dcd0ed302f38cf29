//! Tree shapes: random topologies drawn from the AllStructs enumeration.

use super::*;

/// One shape of a sampled topology.
pub(super) enum Shape {
    Tree(Vec<Key>, Vec<Shape>),
    Bucket(Vec<Key>),
}

/// A random shape for the keys of `kv`, drawn from the AllStructs enumeration (depth 3, up to
/// 2 splits per node) as a uniform pick among what the reference's random test samples: the
/// native topology and reservoir samples of every other structure. [`allstructs::pick`] draws
/// it without walking the enumeration, so its size (tens of thousands of topologies for 8
/// keys) costs nothing.
pub(super) fn sample_topology_shape(rng: &mut ChaCha8Rng, kv: &BTreeMap<Key, Value>) -> Shape {
    let pick = allstructs::pick(kv, 3, 2, SAMPLES_PER_DRAW, rng);
    pick.root().map_or(Shape::Bucket(Vec::new()), shape_of)
}

/// The shape of a topology node (its keys and structure, not its values).
pub(super) fn shape_of(node: btail::topology::Node<'_>) -> Shape {
    if node.is_tree() {
        Shape::Tree(
            node.keys().to_vec(),
            node.children().map(shape_of).collect(),
        )
    } else {
        Shape::Bucket(node.keys().to_vec())
    }
}

/// The topology of `shape` with the values of `kv` (which must hold exactly its keys).
pub(super) fn topology_of(shape: &Shape, kv: &BTreeMap<Key, Value>) -> Topology {
    let mut b = TopologyBuilder::new();
    let mut queue = VecDeque::from([shape]);
    while let Some(node) = queue.pop_front() {
        match node {
            Shape::Tree(seps, children) => {
                b.tree(seps);
                queue.extend(children.iter());
            }
            Shape::Bucket(ks) => {
                b.bucket_kv(ks.iter().map(|k| (*k, &kv[k])));
            }
        }
    }
    b.finish()
        .expect("sampled shapes link every node and keep children of one kind")
}
