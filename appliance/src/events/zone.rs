//! Zones: polygons in normalized picture coordinates (0 to 1, origin top
//! left) that a detection must stand in to count for an event.

use serde::{Deserialize, Serialize};

use crate::meta::BBox;

/// A named polygon; a detection is in it when its box's bottom centre (where
/// an object stands on the ground) is inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "ZoneSpec", into = "ZoneSpec")]
pub struct Zone {
    name: String,
    points: Vec<[f32; 2]>,
}

/// The zone as written in the configuration, before it is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Shown in events and on the dashboard.
    pub name: String,
    /// At least three `[x, y]` corners, each 0 to 1.
    pub points: Vec<[f32; 2]>,
}

impl TryFrom<ZoneSpec> for Zone {
    type Error = String;
    fn try_from(spec: ZoneSpec) -> Result<Self, String> {
        Zone::new(spec.name, spec.points)
    }
}

impl From<Zone> for ZoneSpec {
    fn from(zone: Zone) -> Self {
        Self {
            name: zone.name,
            points: zone.points,
        }
    }
}

impl Zone {
    /// A zone, or why it is invalid: no name, fewer than three points, or a
    /// point outside `[0, 1]`.
    pub fn new(name: String, points: Vec<[f32; 2]>) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("a zone needs a name".into());
        }
        if points.len() < 3 {
            return Err(format!(
                "zone {name:?}: points needs at least 3 corners, got {}",
                points.len()
            ));
        }
        if let Some(p) = points
            .iter()
            .find(|p| !p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)))
        {
            return Err(format!("zone {name:?}: point {p:?} is outside 0 to 1"));
        }
        Ok(Self { name, points })
    }

    /// The zone's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The corners, in order.
    pub fn points(&self) -> &[[f32; 2]] {
        &self.points
    }

    /// Whether point (`x`, `y`) lies inside (even-odd rule, as a canvas fills it).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        // Ray casting: count the edges a ray to the right of the point crosses.
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let [xi, yi] = self.points[i];
            let [xj, yj] = self.points[(i + n - 1) % n];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
        }
        inside
    }

    /// Whether a detection with box `bbox` stands in this zone (its bottom centre is inside).
    pub fn holds(&self, bbox: &BBox) -> bool {
        let (x, y) = reference_point(bbox);
        self.contains(x, y)
    }
}

/// A box's reference point: the middle of its bottom edge.
pub fn reference_point(bbox: &BBox) -> (f32, f32) {
    (bbox.x().get() + bbox.w().get() / 2.0, bbox.y().get() + bbox.h().get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Norm16;

    fn bbox(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox::new(
            Norm16::from_f32(x),
            Norm16::from_f32(y),
            Norm16::from_f32(w),
            Norm16::from_f32(h),
        )
        .unwrap()
    }

    #[test]
    fn the_bottom_centre_decides() {
        // The lower half of the picture.
        let zone = Zone::new("drive".into(), vec![[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]).unwrap();
        assert!(zone.holds(&bbox(0.1, 0.3, 0.2, 0.3)), "feet at y 0.6");
        assert!(!zone.holds(&bbox(0.1, 0.1, 0.2, 0.3)), "feet at y 0.4");
        // A concave L: the notch is outside.
        let l = Zone::new(
            "l".into(),
            vec![[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]],
        )
        .unwrap();
        assert!(l.contains(0.25, 0.25) && l.contains(0.75, 0.75));
        assert!(!l.contains(0.75, 0.25));
    }

    #[test]
    fn bad_zones_say_why() {
        assert!(Zone::new("".into(), vec![[0.0, 0.0]; 3]).unwrap_err().contains("name"));
        assert!(Zone::new("a".into(), vec![[0.0, 0.0]; 2])
            .unwrap_err()
            .contains("at least 3"));
        assert!(Zone::new("a".into(), vec![[0.0, 0.0], [1.5, 0.0], [0.0, 1.0]])
            .unwrap_err()
            .contains("outside 0 to 1"));
        assert!(Zone::new("a".into(), vec![[0.0, 0.0], [f32::NAN, 0.0], [0.0, 1.0]]).is_err());
    }
}
