//! What to download: a URL, the file name it is saved under and the
//! sha256 it must have, from a dataset file or the command line.

use super::error::{FetchError, FetchErrorKind};
use super::manifest::MANIFEST_FILE;
use crate::schema::Dataset;

/// One file to download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// File name in the download folder (a plain name, no folders).
    pub name: String,
    /// The `http` or `https` URL to download.
    pub url: String,
    /// The expected sha256 (lower-case hex), when known.
    pub sha256: Option<String>,
}

/// An invalid-source error about `what` (a URL or argument).
fn invalid(what: &str, msg: String) -> FetchError {
    FetchError::at_url(FetchErrorKind::InvalidSource(msg), what)
}

impl Source {
    /// A source saving `url` as `name`.
    ///
    /// # Errors
    /// `url` is not an `http`/`https` URL, or `name` is not a plain file
    /// name (empty, with a folder separator, starting with `.`, or one of
    /// the names fetch keeps for itself: `*.part`, `*.part.json`, the
    /// manifest).
    pub fn new(name: &str, url: &str) -> Result<Source, FetchError> {
        check_url(url)?;
        check_name(name, url)?;
        Ok(Source { name: name.to_owned(), url: url.to_owned(), sha256: None })
    }

    /// A source from a command-line argument: `URL`, saved under the last
    /// segment of its path (percent-decoded), or `NAME=URL`.
    ///
    /// # Errors
    /// As [`Source::new`], or the URL's path has no file name.
    pub fn parse(arg: &str) -> Result<Source, FetchError> {
        if let Some((name, url)) = arg.split_once('=')
            && !name.contains([':', '/'])
        {
            return Source::new(name, url);
        }
        check_url(arg)?;
        let name = name_from_url(arg).ok_or_else(|| {
            invalid(
                arg,
                "the URL's path has no file name; give NAME=URL".into(),
            )
        })?;
        Source::new(&name, arg)
    }

    /// Sets the expected sha256.
    ///
    /// # Errors
    /// `hex` is not 64 hex digits.
    pub fn with_sha256(mut self, hex: &str) -> Result<Source, FetchError> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                &self.url,
                format!("sha256 {hex:?} is not 64 hex digits"),
            ));
        }
        self.sha256 = Some(hex.to_ascii_lowercase());
        Ok(self)
    }

    /// Replaces `{year}` in name and URL by `year`.
    ///
    /// # Errors
    /// A placeholder is present and `year` is `None` or not made of ASCII
    /// digits.
    pub fn with_year(self, year: Option<&str>) -> Result<Source, FetchError> {
        let name = substitute_year(&self.name, year, &self.url, "file name")?;
        let url = substitute_year(&self.url, year, &self.url, "URL")?;
        let s = Source::new(&name, &url)?;
        Ok(Source { sha256: self.sha256, ..s })
    }

    /// The sources of a dataset's archives that have a URL, in file order,
    /// with `{year}` replaced and the dataset's sha256 expected. Archives
    /// without a URL are left out.
    ///
    /// # Errors
    /// As [`Source::new`] and [`Source::with_year`], naming the archive.
    pub fn from_dataset(
        dataset: &Dataset,
        year: Option<&str>,
    ) -> Result<Vec<Source>, FetchError> {
        let mut out = Vec::new();
        for a in &dataset.archives {
            let Some(url) = &a.url else { continue };
            let mut s = Source {
                name: a.name.clone(),
                url: url.clone(),
                sha256: None,
            }
            .with_year(year)?;
            if let Some(h) = &a.sha256 {
                s = s.with_sha256(h)?;
            }
            out.push(s);
        }
        Ok(out)
    }
}

/// `text` (the source's `what`) with every `{year}` replaced.
fn substitute_year(
    text: &str,
    year: Option<&str>,
    url: &str,
    what: &str,
) -> Result<String, FetchError> {
    if !text.contains("{year}") {
        return Ok(text.to_owned());
    }
    match year {
        Some(y) if !y.is_empty() && y.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(text.replace("{year}", y))
        }
        Some(y) => Err(invalid(url, format!("year {y:?} is not a number"))),
        None => Err(invalid(
            url,
            format!("the {what} contains {{year}}: give --year"),
        )),
    }
}

fn check_url(url: &str) -> Result<(), FetchError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {
            Ok(())
        }
        Ok(u) => Err(invalid(
            url,
            format!("scheme {:?} is not http or https", u.scheme()),
        )),
        Err(e) => Err(invalid(url, format!("not a URL: {e}"))),
    }
}

fn check_name(name: &str, url: &str) -> Result<(), FetchError> {
    let reserved = name.ends_with(".part")
        || name.ends_with(".part.json")
        || name.ends_with(".part.json.tmp")
        || name.starts_with(MANIFEST_FILE);
    let bad = name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.len() > 255;
    if bad || reserved {
        return Err(invalid(
            url,
            format!("{name:?} cannot be used as a download file name"),
        ));
    }
    Ok(())
}

/// The last path segment of `url`, percent-decoded; `None` when empty or
/// not UTF-8.
fn name_from_url(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let last = u.path_segments()?.next_back()?;
    let name = percent_decode(last)?;
    (!name.is_empty()).then_some(name)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls() {
        let s = Source::parse("https://h/data/2025/Real%20acct.zip?x=1")
            .expect("ok");
        assert_eq!(s.name, "Real acct.zip");
        let s = Source::parse("a.zip=https://h/get?id=7").expect("ok");
        assert_eq!(
            (s.name.as_str(), s.url.as_str()),
            ("a.zip", "https://h/get?id=7")
        );
        let e = Source::parse("https://h/dir/").expect_err("no name");
        assert_eq!(
            e.to_string(),
            "https://h/dir/: the URL's path has no file name; give NAME=URL"
        );
    }

    #[test]
    fn rejects_bad_urls_and_names() {
        let e = Source::parse("ftp://h/a.zip").expect_err("scheme");
        assert_eq!(
            e.to_string(),
            "ftp://h/a.zip: scheme \"ftp\" is not http or https"
        );
        assert!(Source::parse("nonsense").is_err());
        for name in [
            "",
            ".hidden",
            "a/b",
            "a.zip.part",
            "a.part.json",
            "fwload-manifest.json",
        ] {
            assert!(Source::new(name, "http://h/x").is_err(), "{name}");
        }
    }

    #[test]
    fn substitutes_year() {
        let s =
            Source::new("R_{year}.zip", "http://h/{year}/R.zip").expect("ok");
        let y = s.clone().with_year(Some("2024")).expect("year");
        assert_eq!(
            (y.name.as_str(), y.url.as_str()),
            ("R_2024.zip", "http://h/2024/R.zip")
        );
        let e = s.clone().with_year(None).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "http://h/{year}/R.zip: the file name contains {year}: give --year"
        );
        assert!(s.with_year(Some("20x4")).is_err());
        let s = Source::parse("http://h/{year}/R_{year}.zip").expect("ok");
        let y = s.with_year(Some("2025")).expect("year");
        assert_eq!(y.name, "R_2025.zip");
        assert_eq!(y.url, "http://h/2025/R_2025.zip");
    }

    #[test]
    fn checks_sha256_text() {
        let s = Source::new("a", "http://h/a").expect("ok");
        assert!(s.clone().with_sha256("abc").is_err());
        let s = s.with_sha256(&"AB".repeat(32)).expect("hex");
        assert_eq!(s.sha256, Some("ab".repeat(32)));
    }
}
