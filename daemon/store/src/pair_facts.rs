//! What the store itself can tell of a pair from the daemon's pair record: its id, number and
//! disks. The record stays the daemon's (opaque JSON, see [`Store::put_pair`]); these are the
//! few fields a reader of points with no daemon running (offline recovery) needs, read from
//! the same JSON under the same key, every other field ignored.

use crate::{PairId, Store, StoreError};
use drpair_types::DiskGeometry;
use serde::{Deserialize, Serialize};

/// A pair as its stored record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairFacts {
    pub pair_id: PairId,
    /// The number the store's keys use for the pair.
    pub pair_no: u32,
    /// The protected disks, in disk order.
    pub disks: Vec<DiskFacts>,
    /// The disks older points were cut with, when they changed since (a disk grown and
    /// adopted, or a restart that took other disks).
    #[serde(default)]
    pub geometry_eras: Vec<GeometryEra>,
}

/// The disks of the points up to and including epoch `through` (and after the era before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeometryEra {
    pub through: drpair_types::Epoch,
    pub disks: Vec<DiskGeometry>,
}

/// The disks a point of `epoch` was cut with: those of the first era that reaches it, else
/// the current ones.
pub fn geometry_at(current: Vec<DiskGeometry>, eras: &[GeometryEra], epoch: drpair_types::Epoch) -> Vec<DiskGeometry> {
    eras.iter().find(|e| epoch <= e.through).map(|e| e.disks.clone()).unwrap_or(current)
}

/// One disk of a pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskFacts {
    /// The disk's path on the protected server.
    #[serde(default)]
    pub path: String,
    pub geometry: DiskGeometry,
}

impl PairFacts {
    /// The disks' geometries, in disk order.
    pub fn geometries(&self) -> Vec<DiskGeometry> {
        self.disks.iter().map(|d| d.geometry).collect()
    }

    /// The disks the point of `epoch` was cut with.
    pub fn geometries_at(&self, epoch: drpair_types::Epoch) -> Vec<DiskGeometry> {
        geometry_at(self.geometries(), &self.geometry_eras, epoch)
    }
}

impl Store {
    /// The facts of every pair record, in pair id order.
    pub fn pair_facts(&self) -> Result<Vec<PairFacts>, StoreError> {
        self.load_pairs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::open_temp;
    use drpair_types::ChunkSize;

    #[test]
    fn facts_are_read_from_a_fuller_record() {
        let (_dir, s) = open_temp();
        let g = DiskGeometry::new(1 << 20, ChunkSize::DEFAULT).unwrap();
        let id = PairId::new("web-01").unwrap();
        let record = serde_json::json!({
            "pair_id": "web-01", "pair_no": 3, "committed": 9, "tracker": "scan",
            "disks": [{"path": "/dev/vdb", "geometry": g}, {"path": "/dev/vdc", "geometry": g}],
            "lifecycle": {"state": "replicating"},
        });
        s.put_pair(&id, &record).unwrap();
        let facts = s.pair_facts().unwrap();
        assert_eq!(facts.len(), 1);
        assert_eq!((&facts[0].pair_id, facts[0].pair_no, facts[0].geometries()), (&id, 3, vec![g, g]));
        assert_eq!(facts[0].disks[1].path, "/dev/vdc");
        assert_eq!(facts[0].geometries_at(3), vec![g, g], "no eras: the current disks");
        s.put_pair(&PairId::new("bad").unwrap(), &serde_json::json!({"pair_id": "bad"})).unwrap();
        assert!(s.pair_facts().unwrap_err().to_string().starts_with("pair 'bad' record:"));
    }
}

#[cfg(test)]
mod era_tests {
    use super::*;
    use drpair_types::ChunkSize;

    #[test]
    fn a_point_gets_the_disks_of_its_era() {
        let g = |mib: u64| DiskGeometry::new(mib << 20, ChunkSize::DEFAULT).unwrap();
        let eras = [GeometryEra { through: 4, disks: vec![g(1)] }, GeometryEra { through: 9, disks: vec![g(2), g(1)] }];
        assert_eq!(geometry_at(vec![g(3)], &eras, 1), vec![g(1)]);
        assert_eq!(geometry_at(vec![g(3)], &eras, 4), vec![g(1)]);
        assert_eq!(geometry_at(vec![g(3)], &eras, 5), vec![g(2), g(1)]);
        assert_eq!(geometry_at(vec![g(3)], &eras, 10), vec![g(3)]);
    }
}
