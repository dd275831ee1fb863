//! Session functions: `current_user`, `session_user`, `current_database()`, `current_catalog`, `current_schema()`,
//! `version()`.
//!
//! Plans are cached by text and shared by every session, so these cannot be folded into the plan: they read the
//! running session's identity from the `SessionIdentity` config extension, which each execution sets on its own copy
//! of the session state. Constant folding happens while a plan is optimised for one execution, so it sees that
//! execution's identity.

use datafusion::arrow::datatypes::DataType as ArrowType;
use datafusion::common::{extensions_options, Result, ScalarValue};
use datafusion::config::ConfigExtension;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

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

impl ConfigExtension for SessionIdentity {
    const PREFIX: &'static str = "lanedb_session";
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
    .collect()
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
