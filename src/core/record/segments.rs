//! The segments a ground-truth pair is counted in, as the logging calls take them.

/// The segments a ground-truth pair belongs to: `()` for none, or an array, slice, `Vec`
/// or `Option` of names (`&str`, `String`, ...).
///
/// ```
/// # let dir = std::env::temp_dir().join("modelwatch-doc-segments");
/// # let agent = modelwatch::Agent::start(modelwatch::Config::new("k").data_dir(&dir))?;
/// let sess = agent.session("m");
/// sess.log_ground_truth(true, false, ());
/// sess.log_ground_truth(true, true, ["web", "eu"]);
/// sess.log_ground_truth(true, true, vec![String::from("mobile")]);
/// sess.log_ground_truth(true, true, Some("web"));
/// # Ok::<(), modelwatch::Error>(())
/// ```
pub trait Segments {
    /// The segment names.
    fn names(&self) -> impl Iterator<Item = &str>;
}

impl Segments for () {
    fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::empty()
    }
}
impl<S: AsRef<str>> Segments for [S] {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(AsRef::as_ref)
    }
}
impl<S: AsRef<str>, const N: usize> Segments for [S; N] {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(AsRef::as_ref)
    }
}
impl<S: AsRef<str>> Segments for Vec<S> {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(AsRef::as_ref)
    }
}
impl<S: AsRef<str>> Segments for Option<S> {
    fn names(&self) -> impl Iterator<Item = &str> {
        self.iter().map(AsRef::as_ref)
    }
}
impl<T: Segments + ?Sized> Segments for &T {
    fn names(&self) -> impl Iterator<Item = &str> {
        (**self).names()
    }
}
