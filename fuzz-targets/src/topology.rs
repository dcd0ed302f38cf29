//! The topology encoding (`T3/T-T/B1-T5/B-B7,8,9`): any text parses or is refused with an
//! error; a parsed topology encodes to a text that parses back to the same topology and
//! encodes to the same text again, and its accessors hold on it.

use btail::topology::Topology;

/// The target.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(topo) = Topology::parse(text) else {
        return;
    };
    let encoded = topo.encode();
    let back = Topology::parse(&encoded)
        .unwrap_or_else(|e| panic!("{text:?} parsed, but its encoding {encoded:?} does not: {e}"));
    assert_eq!(back, topo, "{text:?}: decode∘encode changed the topology");
    assert_eq!(
        back.encode(),
        encoded,
        "{text:?}: the encoding is not stable"
    );
    let mut nodes = 0;
    topo.walk(|_, _, _| nodes += 1);
    assert_eq!(nodes, topo.len(), "{text:?}: the walk skips nodes");
    // `ø` has no buckets but is modelled as one covering everything.
    assert_eq!(
        topo.buckets().len().max(usize::from(topo.is_deleted())),
        topo.bucket_keycovs().len(),
        "{text:?}: buckets and their coverages disagree"
    );
    if topo.check_keys().is_ok() {
        let keys = topo.bucket_keys();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "{text:?}: checked keys are not ascending: {keys:?}"
        );
    }
}
