//! Topology encoding: the reference's examples, parse errors, round-trip properties.

use btail::KEY_MAX;
use btail::blib::KeyRange;
use btail::topology::{NodeKind, Topology, TopologyBuilder, Value};
use proptest::prelude::*;

const EXAMPLES: &[&str] = &[
    "T/B",
    "T/B1",
    "T/B1,3",
    "T/T/B",
    "T3/T-T/B1-T5/B-B7,8,9",
    "T4/T2-T/T-T-T6,10/B1-B3-T-T-T/T-B7-B11/B5",
    "T/B:",
    "T/B1:4",
    "T/B1:4,2:5",
    "T3/B1:10-B4:11,5:12",
    "B1:a,2:b",
    "B:",
    "B",
    "ø",
];

#[test]
fn reference_examples_round_trip() {
    for s in EXAMPLES {
        let t = Topology::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t.to_string(), *s);
    }
}

#[test]
fn decoded_structure_matches_the_reference_reading() {
    // T3/T-T/B1-T5/B-B7,8,9 = T([3], T([],B(1)), T([], T([5], B(), B(7,8,9))))
    let t = Topology::parse("T3/T-T/B1-T5/B-B7,8,9").unwrap();
    let root = t.root().unwrap();
    assert_eq!(root.keys(), &[3]);
    let (l, r) = (root.child(0), root.child(1));
    assert!(l.is_tree() && l.keys().is_empty());
    assert_eq!(l.child(0).kind(), NodeKind::Bucket);
    assert_eq!(l.child(0).keys(), &[1]);
    let t5 = r.child(0);
    assert_eq!(t5.keys(), &[5]);
    assert!(t5.child(0).keys().is_empty());
    assert_eq!(t5.child(1).keys(), &[7, 8, 9]);
    let covs = t.bucket_keycovs();
    assert_eq!(
        covs,
        vec![
            KeyRange::new(i64::MIN, 2),
            KeyRange::new(3, 4),
            KeyRange::new(5, KEY_MAX)
        ]
    );
}

#[test]
fn values_and_empty_buckets() {
    let t = Topology::parse("T3/B1:10-B4:11,5:12").unwrap();
    let kv: Vec<(i64, String)> = t
        .kv()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    assert_eq!(
        kv,
        vec![(1, "10".into()), (4, "11".into()), (5, "12".into())]
    );
    assert!(t.is_valued());
    let empty = Topology::parse("T/B:").unwrap();
    assert!(empty.kv().is_empty());
    assert!(empty.root().unwrap().child(0).is_valued());
    assert!(
        !Topology::parse("T/B")
            .unwrap()
            .root()
            .unwrap()
            .child(0)
            .is_valued()
    );
    assert_ne!(Topology::parse("T/B").unwrap(), empty);
}

fn parse_err(s: &str) -> (usize, String) {
    let e = Topology::parse(s).expect_err(s);
    (e.pos, e.what)
}

#[test]
fn parse_errors_name_position_and_expectation() {
    assert_eq!(parse_err("X").0, 0);
    assert!(parse_err("X").1.contains("'T' or 'B'"));
    // T1 links two nodes, only one given.
    let (pos, what) = parse_err("T1/B0");
    assert_eq!(pos, 3);
    assert!(what.contains("2 node"), "{what}");
    // Trees at the last level link nodes that are missing.
    let (pos, what) = parse_err("T/T");
    assert_eq!(pos, 3);
    assert!(what.contains("'/'"), "{what}");
    // Nothing links a next level below buckets.
    assert_eq!(parse_err("T/B/B").0, 3);
    assert_eq!(parse_err("T/B1,").0, 5);
    assert_eq!(parse_err("T/B1:").0, 5);
    assert_eq!(parse_err("T/B1:a,2").0, 8);
    assert_eq!(parse_err("T1/B-T/B").0, 8);
    assert_eq!(parse_err("T/B99999999999999999999").0, 3);
    assert_eq!(parse_err("").0, 0);
    // A negative key collides with the node separator.
    assert_eq!(parse_err("T-1/B"), (2, "a node: 'T' or 'B'".to_string()));
}

/// A random nested shape, encoded through the builder in level order.
#[derive(Clone, Debug)]
enum Shape {
    Tree(Vec<i64>, Vec<Shape>),
    Bucket(Vec<i64>, Option<Vec<String>>),
}

fn shape(depth: u32) -> BoxedStrategy<Shape> {
    let bucket = (prop::collection::vec(0i64..1000, 0..4), any::<bool>())
        .prop_flat_map(|(keys, valued)| {
            let n = keys.len();
            let vals = prop::collection::vec("[a-j][0-9]?", n..=n);
            (Just(keys), vals, Just(valued))
        })
        .prop_map(|(keys, vals, valued)| Shape::Bucket(keys, valued.then_some(vals)))
        .boxed();
    if depth == 0 {
        return bucket;
    }
    let sub = shape(depth - 1);
    prop_oneof![
        bucket.clone(),
        (prop::collection::vec(0i64..1000, 0..3), any::<bool>())
            .prop_flat_map(move |(keys, trees)| {
                let n = keys.len() + 1;
                let child = if trees { sub.clone() } else { shape(0) };
                (Just(keys), prop::collection::vec(child, n..=n))
            })
            .prop_map(|(keys, children)| Shape::Tree(keys, children))
    ]
    .boxed()
}

fn build(root: &Shape) -> Topology {
    let mut b = TopologyBuilder::new();
    let mut level = vec![root];
    while !level.is_empty() {
        let mut next = Vec::new();
        for s in level {
            match s {
                Shape::Tree(keys, children) => {
                    b.tree(keys);
                    next.extend(children.iter());
                }
                Shape::Bucket(keys, None) => {
                    b.bucket_keys(keys);
                }
                Shape::Bucket(keys, Some(vals)) => {
                    let vals: Vec<Value> = vals.iter().map(|v| Value::from(v.as_str())).collect();
                    b.bucket_kv(keys.iter().copied().zip(vals.iter()));
                }
            }
        }
        level = next;
    }
    b.finish().unwrap()
}

fn valid_shape() -> impl Strategy<Value = Shape> {
    // Children of one Tree must be of one kind: normalize mixed ones to buckets.
    fn fix(s: Shape) -> Shape {
        match s {
            Shape::Tree(keys, children) => {
                let trees = children.iter().all(|c| matches!(c, Shape::Tree(..)));
                let children = children
                    .into_iter()
                    .map(|c| match c {
                        Shape::Tree(..) if !trees => Shape::Bucket(vec![], None),
                        c => fix(c),
                    })
                    .collect();
                Shape::Tree(keys, children)
            }
            b => b,
        }
    }
    shape(3).prop_map(fix)
}

proptest! {
    #[test]
    fn encode_decode_round_trip(s in valid_shape()) {
        let t = build(&s);
        let text = t.encode();
        let back = Topology::parse(&text).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(back.encode(), text);
    }

    #[test]
    fn parser_never_panics(s in "[TB0-9,:/ab-]{0,24}") {
        if let Ok(t) = Topology::parse(&s) {
            prop_assert_eq!(Topology::parse(&t.encode()).unwrap(), t);
        }
    }
}
