//! Images: a name pointing at a root descriptor, with labels.

use berth_ipc::filter::Filters;
use berth_ipc::metadata::Image;
use berth_ipc::names;
use berth_ipc::{Error, Result};

use super::keys::{self, Kind};
use super::{Read, Store, namespaces, update};
use crate::filters::ImageFields;

fn not_found(name: &str) -> Error {
    Error::not_found(format!("image {name}: not found"))
}

fn validate(img: &Image) -> Result<()> {
    names::validate_name("image name", &img.name)?;
    names::validate_name("image media type", &img.target.media_type)?;
    names::validate_user_labels(&img.labels)
}

impl Store {
    /// One image.
    pub fn get_image(&self, ns: &str, name: &str) -> Result<Image> {
        names::validate_namespace(ns)?;
        self.view().get(&keys::object(ns, Kind::Image, name))?.ok_or_else(|| not_found(name))
    }

    /// Images matching `filters`, by name.
    pub fn list_images(&self, ns: &str, filters: &Filters) -> Result<Vec<Image>> {
        names::validate_namespace(ns)?;
        let all = self.view().scan::<Image>(&keys::objects(ns, Kind::Image))?;
        Ok(all.into_iter().map(|(_, i)| i).filter(|i| filters.matches(&ImageFields(i))).collect())
    }

    /// Creates an image; `AlreadyExists` if the name is taken.
    pub fn create_image(&self, ns: &str, image: &Image) -> Result<Image> {
        validate(image)?;
        self.write(|tx| {
            namespaces::ensure(tx, ns)?;
            let key = keys::object(ns, Kind::Image, &image.name);
            if tx.raw(&key)?.is_some() {
                return Err(Error::already_exists(format!("image {}: already exists", image.name)));
            }
            let img = Image { created: tx.now(), updated: tx.now(), ..image.clone() };
            tx.put(&key, &img)?;
            Ok(img)
        })
    }

    /// Updates an image by field paths: `labels`, `labels.<k>`, `target` (none = all).
    pub fn update_image(&self, ns: &str, image: &Image, paths: &[String]) -> Result<Image> {
        validate(image)?;
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Image, &image.name);
            let mut cur: Image = tx.get(&key)?.ok_or_else(|| not_found(&image.name))?;
            if paths.is_empty() {
                cur.labels = image.labels.clone();
                cur.target = image.target.clone();
            }
            for path in paths {
                if update::labels(path, &mut cur.labels, &image.labels)? {
                    continue;
                }
                match path.as_str() {
                    "target" => cur.target = image.target.clone(),
                    _ => return Err(update::unknown(&format!("image {}", image.name), path)),
                }
            }
            cur.updated = tx.now();
            tx.put(&key, &cur)?;
            Ok(cur)
        })
    }

    /// Deletes an image.
    pub fn delete_image(&self, ns: &str, name: &str) -> Result<()> {
        names::validate_namespace(ns)?;
        self.write(|tx| {
            let key = keys::object(ns, Kind::Image, name);
            if tx.raw(&key)?.is_none() {
                return Err(not_found(name));
            }
            tx.delete(&key);
            Ok(())
        })
    }
}
