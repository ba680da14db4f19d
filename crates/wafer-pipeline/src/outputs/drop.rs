//! `drop`: writes nothing and confirms everything.

use super::{Output, Rejected};
use crate::config::{ComponentConfig, ComponentError};
use crate::{BoxFuture, BuildContext};

struct Drop;

pub(super) fn build(
    config: &ComponentConfig,
    _: &BuildContext<'_>,
) -> Result<Box<dyn Output>, ComponentError> {
    let _: serde::de::IgnoredAny = config.parse()?;
    Ok(Box::new(Drop))
}

impl Output for Drop {
    fn write<'a>(
        &'a mut self,
        _: &'a [wafer::Message],
    ) -> BoxFuture<'a, Result<Vec<Rejected>, String>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
