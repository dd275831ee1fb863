//! Session functions: `current_user`, `session_user`, `current_database()`, `current_catalog`, `current_schema()`,
//! `version()`, `current_setting(name [, missing_ok])`; and `set_config`, which runs only as a statement of its own
//! (`SELECT set_config(name, value, is_local)`, a session command: see `session`) and refuses to run inside a query.
//!
//! Plans are cached by text and shared by every session, so these cannot be folded into the plan: they read the
//! running session's identity from the `SessionIdentity` config extension, which each execution sets on its own copy
//! of the session state. Constant folding happens while a plan is optimised for one execution, so it sees that
//! execution's identity.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::{extensions_options, DataFusionError, Result, ScalarValue};
use datafusion::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use lanedb_engine::{Error, SqlState};

extensions_options! {
    /// Who runs the statement: the user and database the client named at start-up, the session's `TimeZone` the
    /// statement was planned in, and the database's default one.
    pub struct SessionIdentity {
        pub user: String, default = "lanedb".to_string()
        pub database: String, default = "lanedb".to_string()
        pub zone: String, default = lanedb_engine::types::DEFAULT_ZONE.to_string()
        pub server_zone: String, default = lanedb_engine::types::DEFAULT_ZONE.to_string()
    }
}

/// The running session's `SessionIdentity` or `SessionSettings` from an execution's config, or the defaults when
/// it has none (a query run outside a session).
pub fn session_extension<T: ConfigExtension + Clone + Default>(
    options: &datafusion::config::ConfigOptions,
) -> T {
    options.extensions.get::<T>().cloned().unwrap_or_default()
}

impl ConfigExtension for SessionIdentity {
    const PREFIX: &'static str = "lanedb_session";
}

/// The settings the running session has changed (`SET`, `set_config`, its start-up packet), by lower-case name; the
/// others have their defaults. Then what the client's start-up packet set: `pg_settings` gives those still at that
/// value the source `client`. Set on each execution's own copy of the session state, like `SessionIdentity`.
#[derive(Clone, Debug, Default)]
pub struct SessionSettings(
    pub Arc<BTreeMap<String, String>>,
    pub Arc<BTreeMap<String, String>>,
);

impl SessionSettings {
    /// The session's value of `name` (lower-case), or `None` for an unknown name.
    pub fn get(&self, name: &str, identity: &SessionIdentity) -> Option<String> {
        lanedb_engine::output::session_setting(name, &self.0, &identity.user, &identity.zone)
    }
}

impl ExtensionOptions for SessionSettings {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        Err(DataFusionError::Configuration(format!(
            "{key} is a session setting: use SET"
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        self.0
            .iter()
            .map(|(name, value)| ConfigEntry {
                key: format!("{}.{name}", Self::PREFIX),
                value: Some(value.clone()),
                description: "set by the session",
            })
            .collect()
    }
}

impl ConfigExtension for SessionSettings {
    const PREFIX: &'static str = "lanedb_settings";
}

#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum Which {
    User,
    Database,
    Schema,
    Version,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SessionFunction {
    name: &'static str,
    which: Which,
    signature: Signature,
}

/// Every session function, for registering on the session state.
pub fn all() -> Vec<ScalarUDF> {
    [
        ("current_user", Which::User),
        ("session_user", Which::User),
        ("user", Which::User),
        ("current_role", Which::User),
        ("current_database", Which::Database),
        ("current_catalog", Which::Database),
        ("current_schema", Which::Schema),
        ("version", Which::Version),
    ]
    .into_iter()
    .map(|(name, which)| {
        ScalarUDF::from(SessionFunction {
            name,
            which,
            signature: Signature::exact(vec![], Volatility::Stable),
        })
    })
    .chain([
        ScalarUDF::from(CurrentSetting {
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![ArrowType::Utf8]),
                    TypeSignature::Exact(vec![ArrowType::Utf8, ArrowType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }),
        ScalarUDF::from(SetConfig {
            signature: Signature::exact(
                vec![ArrowType::Utf8, ArrowType::Utf8, ArrowType::Boolean],
                Volatility::Volatile,
            ),
        }),
    ])
    .collect()
}

/// `current_setting(name [, missing_ok])`: the running session's value of a setting, as `SHOW` gives it. An unknown
/// name is an error (42704) unless `missing_ok`, then NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    signature: Signature,
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let identity: SessionIdentity = session_extension(&args.config_options);
        let settings: SessionSettings = session_extension(&args.config_options);
        let (scalar, arrays) = crate::pg_types::arguments(&args.args)?;
        let names = arrays[0].as_string::<i32>();
        let missing_ok = arrays.get(1).map(|a| a.as_boolean());
        let mut out = StringBuilder::with_capacity(names.len(), 16 * names.len());
        for row in 0..names.len() {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            let name = names.value(row);
            match settings.get(&name.to_ascii_lowercase(), &identity) {
                Some(value) => out.append_value(value),
                None if missing_ok.is_some_and(|m| m.is_valid(row) && m.value(row)) => {
                    out.append_null()
                }
                None => {
                    return Err(DataFusionError::External(Box::new(Error::new(
                        SqlState::UNDEFINED_OBJECT,
                        format!("unrecognized configuration parameter \"{name}\""),
                    ))))
                }
            }
        }
        let array: Arc<dyn Array> = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }
}

/// `set_config` inside a query, where it cannot change the session (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct SetConfig {
    signature: Signature,
}

impl ScalarUDFImpl for SetConfig {
    fn name(&self) -> &str {
        "set_config"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Err(DataFusionError::External(Box::new(Error::unsupported(
            "set_config() runs only as a statement of its own: SELECT set_config(name, value, is_local), with \
             constants or parameters as arguments",
        ))))
    }
}

impl ScalarUDFImpl for SessionFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[ArrowType]) -> Result<ArrowType> {
        Ok(ArrowType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let identity = args.config_options.extensions.get::<SessionIdentity>();
        let text = match (self.which, identity) {
            (Which::User, Some(i)) => i.user.clone(),
            (Which::Database, Some(i)) => i.database.clone(),
            (Which::User | Which::Database, None) => SessionIdentity::default().user,
            (Which::Schema, _) => "public".to_string(),
            (Which::Version, _) => format!(
                "PostgreSQL {} (LaneDB {}) on x86_64-pc-linux-gnu, an in-memory transactional SQL engine",
                lanedb_engine::output::SERVER_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text))))
    }
}
