//! Writing `Photos.sqlite` for a plan: a per-version Core Data schema, rows derived from the
//! planned intent, and a write-ahead log that is deliberately left un-checkpointed.
//!
//! WAL handling: the connection runs with `wal_autocheckpoint=0` and
//! `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, so closing it leaves `Photos.sqlite-wal` in place. The
//! older part of the library is checkpointed into the main file (`wal_checkpoint(TRUNCATE)`),
//! the newest assets and a few later state changes (purges, trashing) are committed only to
//! the WAL. A reader that ignores the WAL therefore misses assets and sees stale states.
//!
//! Determinism: SQLite salts each WAL generation with random numbers, so after closing we
//! rewrite the two salts from the seed and recompute the frame checksums (the same algorithm
//! `ferry_photos::wal` checks), and drop the `-shm`, which SQLite rebuilds from the WAL.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use rusqlite::config::DbConfig;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::plan::{Avail, PAsset, PResource, Plan, Role, Upload};

/// Entity numbers and model version for a schema version.
struct Model {
    asset: i64,
    album: i64,
    model_version: i64,
}

fn model(v: u8) -> Model {
    // Entity numbers: Asset 34 on iOS 13, 3 from iOS 14 (spec §2.7); album entities move
    // between models. PLModelVersion per iOS is ⚠ UNCONFIRMED (spec §2.1), logging only.
    match v {
        13 => Model {
            asset: 34,
            album: 26,
            model_version: 13210,
        },
        14 => Model {
            asset: 3,
            album: 26,
            model_version: 14104,
        },
        15 => Model {
            asset: 3,
            album: 27,
            model_version: 15331,
        },
        16 => Model {
            asset: 3,
            album: 28,
            model_version: 16209,
        },
        17 => Model {
            asset: 3,
            album: 28,
            model_version: 17206,
        },
        _ => Model {
            asset: 3,
            album: 30,
            model_version: 18405,
        },
    }
}

const ENT_ATTRS: i64 = 1;
const ENT_MASTER: i64 = 20;
const ENT_RESOURCE: i64 = 40;
const ENT_SHARE: i64 = 50;
const ENT_PARTICIPANT: i64 = 51;
const ENT_CONTRIBUTOR: i64 = 52;
const ENT_ADJUSTMENT: i64 = 60;
const ENT_UTI: i64 = 70;

/// `(column, type, first version, last version)`.
type Col = (&'static str, &'static str, u8, u8);

const ASSET_COLS: &[Col] = &[
    ("ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE", "INTEGER", 16, 99),
    ("ZADJUSTMENTSSTATE", "INTEGER", 18, 99),
    ("ZAVALANCHEKIND", "INTEGER", 18, 99),
    ("ZAVALANCHEPICKTYPE", "INTEGER", 0, 99),
    ("ZBUNDLESCOPE", "INTEGER", 15, 99),
    ("ZCLOUDLOCALSTATE", "INTEGER", 0, 99),
    ("ZCLOUDPLACEHOLDERKIND", "INTEGER", 0, 99),
    ("ZCOMPLETE", "INTEGER", 0, 99),
    ("ZCUSTOMRENDEREDVALUE", "INTEGER", 0, 14),
    ("ZDEFERREDPROCESSINGNEEDED", "INTEGER", 14, 99),
    ("ZDEPTHSTATES", "INTEGER", 0, 13),
    ("ZDEPTHTYPE", "INTEGER", 14, 99),
    ("ZDUPLICATEASSETVISIBILITYSTATE", "INTEGER", 16, 99),
    ("ZHASADJUSTMENTS", "INTEGER", 0, 17),
    ("ZHDRTYPE", "INTEGER", 15, 99),
    ("ZHEIGHT", "INTEGER", 0, 99),
    ("ZHIDDEN", "INTEGER", 0, 99),
    ("ZISDETECTEDSCREENSHOT", "INTEGER", 18, 99),
    ("ZKIND", "INTEGER", 0, 99),
    ("ZKINDSUBTYPE", "INTEGER", 0, 99),
    ("ZLIBRARYSCOPESHARESTATE", "INTEGER", 16, 99),
    ("ZPLAYBACKSTYLE", "INTEGER", 0, 99),
    ("ZSAVEDASSETTYPE", "INTEGER", 0, 99),
    ("ZSPATIALTYPE", "INTEGER", 17, 99),
    ("ZSYNDICATIONSTATE", "INTEGER", 15, 99),
    ("ZTRASHEDSTATE", "INTEGER", 0, 99),
    ("ZVISIBILITYSTATE", "INTEGER", 0, 99),
    ("ZWIDTH", "INTEGER", 0, 99),
    ("ZADDITIONALATTRIBUTES", "INTEGER", 0, 99),
    ("ZLIBRARYSCOPE", "INTEGER", 16, 99),
    ("ZMASTER", "INTEGER", 0, 99),
    ("ZMOMENTSHARE", "INTEGER", 0, 99),
    ("ZTRASHEDBYPARTICIPANT", "INTEGER", 16, 99),
    ("ZADDEDDATE", "TIMESTAMP", 0, 99),
    ("ZADJUSTMENTTIMESTAMP", "TIMESTAMP", 0, 99),
    ("ZCLOUDBATCHPUBLISHDATE", "TIMESTAMP", 0, 99),
    ("ZDATECREATED", "TIMESTAMP", 0, 99),
    ("ZMODIFICATIONDATE", "TIMESTAMP", 0, 99),
    ("ZTRASHEDDATE", "TIMESTAMP", 0, 99),
    ("ZDURATION", "FLOAT", 0, 99),
    ("ZLATITUDE", "FLOAT", 0, 99),
    ("ZLONGITUDE", "FLOAT", 0, 99),
    ("ZAVALANCHEUUID", "VARCHAR", 0, 99),
    ("ZCLOUDASSETGUID", "VARCHAR", 0, 99),
    ("ZDIRECTORY", "VARCHAR", 0, 99),
    ("ZFILENAME", "VARCHAR", 0, 99),
    ("ZMEDIAGROUPUUID", "VARCHAR", 0, 99),
    ("ZUNIFORMTYPEIDENTIFIER", "VARCHAR", 0, 99),
    ("ZUUID", "VARCHAR", 0, 99),
];

const ATTR_COLS: &[Col] = &[
    ("ZORIGINALFILESIZE", "INTEGER", 0, 99),
    ("ZORIGINALHEIGHT", "INTEGER", 0, 99),
    ("ZORIGINALORIENTATION", "INTEGER", 0, 99),
    ("ZORIGINALRESOURCECHOICE", "INTEGER", 0, 99),
    ("ZORIGINALWIDTH", "INTEGER", 0, 99),
    ("ZSYNDICATIONHISTORY", "INTEGER", 15, 99),
    ("ZTIMEZONEOFFSET", "INTEGER", 0, 99),
    ("ZASSET", "INTEGER", 0, 99),
    ("ZUNMANAGEDADJUSTMENT", "INTEGER", 0, 99),
    ("ZADJUSTEDFINGERPRINT", "VARCHAR", 0, 17),
    ("ZADJUSTEDSTABLEHASH", "VARCHAR", 18, 99),
    ("ZCREATORBUNDLEID", "VARCHAR", 0, 14),
    ("ZEXIFTIMESTAMPSTRING", "VARCHAR", 0, 99),
    ("ZIMPORTEDBYBUNDLEIDENTIFIER", "VARCHAR", 15, 99),
    ("ZMASTERFINGERPRINT", "VARCHAR", 0, 17),
    ("ZORIGINALFILENAME", "VARCHAR", 0, 99),
    ("ZORIGINALSTABLEHASH", "VARCHAR", 18, 99),
    ("ZSYNDICATIONIDENTIFIER", "VARCHAR", 15, 99),
    ("ZTIMEZONENAME", "VARCHAR", 0, 99),
];

const RESOURCE_COLS: &[Col] = &[
    ("ZCLOUDSOURCETYPE", "INTEGER", 0, 99),
    ("ZCOMPACTUTI", "INTEGER", 15, 99),
    ("ZDATASTORECLASSID", "INTEGER", 0, 99),
    ("ZDATASTORESUBTYPE", "INTEGER", 0, 99),
    ("ZLOCALAVAILABILITY", "INTEGER", 0, 99),
    ("ZLOCALAVAILABILITYTARGET", "INTEGER", 0, 99),
    ("ZRECIPEID", "INTEGER", 0, 99),
    ("ZREMOTEAVAILABILITY", "INTEGER", 0, 99),
    ("ZREMOTEAVAILABILITYTARGET", "INTEGER", 0, 99),
    ("ZRESOURCETYPE", "INTEGER", 0, 99),
    ("ZTRASHEDSTATE", "INTEGER", 0, 99),
    ("ZUNORIENTEDHEIGHT", "INTEGER", 0, 99),
    ("ZUNORIENTEDWIDTH", "INTEGER", 0, 99),
    ("ZUTICONFORMANCEHINT", "INTEGER", 15, 99),
    ("ZVERSION", "INTEGER", 0, 99),
    ("ZCLOUDLOCALSTATE", "INTEGER", 0, 99),
    ("ZDATALENGTH", "INTEGER", 0, 99),
    ("ZFILEID", "INTEGER", 0, 99),
    ("ZASSET", "INTEGER", 0, 99),
    ("ZTRANSIENTCLOUDMASTER", "INTEGER", 0, 99),
    ("ZUNIFORMTYPEIDENTIFIER", "INTEGER", 0, 14),
    ("ZCLOUDLASTONDEMANDDOWNLOADDATE", "TIMESTAMP", 0, 99),
    ("ZCLOUDLASTPREFETCHDATE", "TIMESTAMP", 0, 99),
    ("ZCLOUDMASTERDATECREATED", "TIMESTAMP", 0, 99),
    ("ZTRASHEDDATE", "TIMESTAMP", 0, 99),
    ("ZCODECFOURCHARCODENAME", "VARCHAR", 15, 99),
    ("ZFINGERPRINT", "VARCHAR", 0, 99),
    ("ZSTABLEHASH", "VARCHAR", 18, 99),
    ("ZDATASTOREKEYDATA", "BLOB", 0, 99),
];

/// The CREATE statements of one version, and every table's column list (for inserts).
fn schema(v: u8, m: &Model) -> (Vec<String>, HashMap<String, Vec<&'static str>>) {
    let mut tables: Vec<(String, Vec<(String, &'static str)>)> = Vec::new();
    let pick = |cols: &[Col]| -> Vec<(String, &'static str)> {
        cols.iter()
            .filter(|c| c.2 <= v && v <= c.3)
            .map(|c| (c.0.to_string(), c.1))
            .collect()
    };
    let asset_table = if v <= 13 { "ZGENERICASSET" } else { "ZASSET" };
    tables.push((asset_table.into(), pick(ASSET_COLS)));
    tables.push(("ZADDITIONALASSETATTRIBUTES".into(), pick(ATTR_COLS)));
    tables.push(("ZINTERNALRESOURCE".into(), pick(RESOURCE_COLS)));
    let own = |cols: &[(&str, &'static str)]| {
        cols.iter()
            .map(|(c, t)| (c.to_string(), *t))
            .collect::<Vec<_>>()
    };
    tables.push((
        "ZCLOUDMASTER".into(),
        own(&[
            ("ZCLOUDLOCALSTATE", "INTEGER"),
            ("ZCREATIONDATE", "TIMESTAMP"),
            ("ZCLOUDMASTERGUID", "VARCHAR"),
            ("ZORIGINALFILENAME", "VARCHAR"),
            ("ZUNIFORMTYPEIDENTIFIER", "VARCHAR"),
        ]),
    ));
    tables.push((
        "ZUNMANAGEDADJUSTMENT".into(),
        own(&[
            ("ZASSETATTRIBUTES", "INTEGER"),
            ("ZADJUSTMENTTIMESTAMP", "TIMESTAMP"),
            ("ZADJUSTMENTFORMATIDENTIFIER", "VARCHAR"),
            ("ZEDITORLOCALIZEDNAME", "VARCHAR"),
        ]),
    ));
    tables.push((
        "ZSHARE".into(),
        own(&[
            ("ZSCOPETYPE", "INTEGER"),
            ("ZSTATUS", "INTEGER"),
            ("ZSCOPEIDENTIFIER", "VARCHAR"),
            ("ZTITLE", "VARCHAR"),
            ("ZUUID", "VARCHAR"),
        ]),
    ));
    if v >= 16 {
        tables.push((
            "ZSHAREPARTICIPANT".into(),
            own(&[
                ("ZISCURRENTUSER", "INTEGER"),
                ("ZROLE", "INTEGER"),
                ("ZSHARE", "INTEGER"),
                ("ZUUID", "VARCHAR"),
            ]),
        ));
        let fk = format!("Z{}LIBRARYSCOPEASSETCONTRIBUTORS", m.asset);
        tables.push((
            "ZASSETCONTRIBUTOR".into(),
            vec![("ZPARTICIPANT".into(), "INTEGER"), (fk, "INTEGER")],
        ));
    }
    if v <= 14 {
        tables.push((
            "ZUNIFORMTYPEIDENTIFIER".into(),
            own(&[("ZIDENTIFIER", "VARCHAR")]),
        ));
    }
    tables.push((
        "ZGENERICALBUM".into(),
        own(&[
            ("ZKIND", "INTEGER"),
            ("ZTRASHEDSTATE", "INTEGER"),
            ("ZCLOUDGUID", "VARCHAR"),
            ("ZTITLE", "VARCHAR"),
            ("ZUUID", "VARCHAR"),
        ]),
    ));

    let mut ddl = vec![
        "CREATE TABLE Z_PRIMARYKEY (Z_ENT INTEGER PRIMARY KEY, Z_NAME VARCHAR, Z_SUPER INTEGER, Z_MAX INTEGER)".to_string(),
        "CREATE TABLE Z_METADATA (Z_VERSION INTEGER PRIMARY KEY, Z_UUID VARCHAR(255), Z_PLIST BLOB)".to_string(),
        "CREATE TABLE Z_MODELCACHE (Z_CONTENT BLOB)".to_string(),
    ];
    let mut columns = HashMap::new();
    for (name, cols) in &tables {
        let body: Vec<String> = cols.iter().map(|(c, t)| format!("{c} {t}")).collect();
        ddl.push(format!(
            "CREATE TABLE {name} ( Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER, {} )",
            body.join(", ")
        ));
        let mut all = vec!["Z_PK", "Z_ENT", "Z_OPT"];
        all.extend(cols.iter().map(|(c, _)| leak(c)));
        columns.insert(name.clone(), all);
    }
    let (a, al) = (m.asset, m.album);
    ddl.push(format!(
        "CREATE TABLE Z_{al}ASSETS ( Z_{al}ALBUMS INTEGER, Z_{a}ASSETS INTEGER, Z_FOK_{a}ASSETS INTEGER, \
         PRIMARY KEY (Z_{al}ALBUMS, Z_{a}ASSETS) )"
    ));
    ddl.push(format!(
        "CREATE INDEX Z_{al}ASSETS_Z_{a}ASSETS_INDEX ON Z_{al}ASSETS (Z_{a}ASSETS, Z_{al}ALBUMS)"
    ));
    ddl.push("CREATE INDEX ZINTERNALRESOURCE_ZASSET_INDEX ON ZINTERNALRESOURCE (ZASSET)".into());
    ddl.push("CREATE INDEX ZADDITIONALASSETATTRIBUTES_ZASSET_INDEX ON ZADDITIONALASSETATTRIBUTES (ZASSET)".into());
    ddl.push(format!("CREATE INDEX {asset_table}_ZADDITIONALATTRIBUTES_INDEX ON {asset_table} (ZADDITIONALATTRIBUTES)"));
    ddl.push(format!(
        "CREATE INDEX {asset_table}_ZMASTER_INDEX ON {asset_table} (ZMASTER)"
    ));
    ddl.push(format!(
        "CREATE INDEX {asset_table}_ZUUID_INDEX ON {asset_table} (ZUUID)"
    ));
    (ddl, columns)
}

/// Column names are static in practice; interning them keeps the insert helper simple.
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

struct Insert {
    sql: String,
    index: HashMap<&'static str, usize>,
    n: usize,
}

impl Insert {
    fn new(table: &str, cols: &[&'static str]) -> Insert {
        let marks = vec!["?"; cols.len()].join(", ");
        Insert {
            sql: format!("INSERT INTO {table} ({}) VALUES ({marks})", cols.join(", ")),
            index: cols.iter().enumerate().map(|(i, c)| (*c, i)).collect(),
            n: cols.len(),
        }
    }

    /// Inserts a row; columns absent from this version are dropped.
    fn run(&self, conn: &Connection, vals: Vec<(&str, Value)>) -> rusqlite::Result<()> {
        let mut row = vec![Value::Null; self.n];
        for (c, v) in vals {
            if let Some(i) = self.index.get(c) {
                row[*i] = v;
            }
        }
        conn.prepare_cached(&self.sql)?
            .execute(params_from_iter(row))?;
        Ok(())
    }
}

fn int(v: impl Into<i64>) -> Value {
    Value::Integer(v.into())
}

fn txt(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn opt_txt(s: Option<&str>) -> Value {
    s.map_or(Value::Null, txt)
}

fn opt_real(f: Option<f64>) -> Value {
    f.map_or(Value::Null, Value::Real)
}

struct Writer<'a> {
    conn: Connection,
    plan: &'a Plan,
    m: Model,
    asset_table: &'static str,
    inserts: HashMap<String, Insert>,
    next_resource_pk: i64,
    next_master_pk: i64,
    next_adjustment_pk: i64,
    next_contributor_pk: i64,
    next_file_id: i64,
    primary_resource_pk: HashMap<i64, i64>,
    uti_pk: HashMap<&'static str, i64>,
}

/// Writes `<photo_data>/Photos.sqlite` (+ `-wal`) for `plan`.
pub(crate) fn write_db(plan: &Plan, photo_data: &Path, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(photo_data)?;
    let db = photo_data.join("Photos.sqlite");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = photo_data.join(format!("Photos.sqlite{suffix}"));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let conn = Connection::open(&db).with_context(|| format!("creating {}", db.display()))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.execute_batch(
        "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
         PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;",
    )?;
    let m = model(plan.version);
    let (ddl, columns) = schema(plan.version, &m);
    conn.execute_batch(&format!("BEGIN; {}; COMMIT;", ddl.join(";\n")))?;
    let inserts = columns
        .iter()
        .map(|(t, cols)| (t.clone(), Insert::new(t, cols)))
        .collect();
    let mut w = Writer {
        conn,
        plan,
        asset_table: if plan.version <= 13 {
            "ZGENERICASSET"
        } else {
            "ZASSET"
        },
        m,
        inserts,
        next_resource_pk: 1,
        next_master_pk: 1,
        next_adjustment_pk: 1,
        next_contributor_pk: 1,
        next_file_id: 1_000_000 + (seed % 1000) as i64,
        primary_resource_pk: HashMap::new(),
        uti_pk: HashMap::new(),
    };

    // Part 1: everything up to wal_start, checkpointed into the main file.
    w.conn.execute_batch("BEGIN")?;
    w.fixed_rows(seed)?;
    for a in &plan.assets[..plan.wal_start] {
        w.asset(a, true)?;
    }
    w.primary_keys()?;
    w.conn.execute_batch("COMMIT")?;
    w.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;

    // Part 2: newest assets and later state changes, committed to the WAL only.
    w.conn.execute_batch("BEGIN")?;
    for a in &plan.assets[plan.wal_start..] {
        w.asset(a, false)?;
    }
    w.late_changes()?;
    w.primary_keys()?;
    w.conn.execute_batch("COMMIT")?;
    // A second, small transaction: real WALs hold many commits.
    w.conn.execute_batch(&format!(
        "BEGIN; UPDATE Z_PRIMARYKEY SET Z_MAX = Z_MAX WHERE Z_ENT = {}; COMMIT;",
        w.m.asset
    ))?;
    let Writer { conn, .. } = w;
    conn.close().map_err(|(_, e)| e)?;

    let wal = photo_data.join("Photos.sqlite-wal");
    resalt_wal(&wal, seed)?;
    let shm = photo_data.join("Photos.sqlite-shm");
    if shm.exists() {
        std::fs::remove_file(&shm)?;
    }
    Ok(())
}

impl Writer<'_> {
    fn ins(&self, table: &str, vals: Vec<(&str, Value)>) -> anyhow::Result<()> {
        let i = self
            .inserts
            .get(table)
            .with_context(|| format!("internal error: no table {table}"))?;
        i.run(&self.conn, vals)
            .with_context(|| format!("inserting into {table}"))
    }

    fn fixed_rows(&mut self, seed: u64) -> anyhow::Result<()> {
        let mut dict = plist::Dictionary::new();
        dict.insert(
            "PLModelVersion".into(),
            plist::Value::Integer(self.m.model_version.into()),
        );
        dict.insert(
            "NSPersistenceFrameworkVersion".into(),
            plist::Value::Integer(1338.into()),
        );
        dict.insert("NSStoreType".into(), plist::Value::String("SQLite".into()));
        let mut blob = Vec::new();
        plist::Value::Dictionary(dict).to_writer_binary(&mut blob)?;
        let uuid = format!(
            "{:08X}-0000-4000-8000-{:012X}",
            seed as u32,
            seed & 0xFFFF_FFFF_FFFF
        );
        self.conn.execute(
            "INSERT INTO Z_METADATA (Z_VERSION, Z_UUID, Z_PLIST) VALUES (1, ?1, ?2)",
            rusqlite::params![uuid, blob],
        )?;
        if self.plan.version <= 14 {
            for (i, uti) in [
                "public.heic",
                "public.jpeg",
                "public.png",
                "com.apple.quicktime-movie",
                "public.mpeg-4",
                "com.adobe.raw-image",
                "com.apple.property-list",
            ]
            .into_iter()
            .enumerate()
            {
                let pk = i as i64 + 1;
                self.uti_pk.insert(uti, pk);
                self.ins(
                    "ZUNIFORMTYPEIDENTIFIER",
                    vec![
                        ("Z_PK", int(pk)),
                        ("Z_ENT", int(ENT_UTI)),
                        ("Z_OPT", int(1)),
                        ("ZIDENTIFIER", txt(uti)),
                    ],
                )?;
            }
        }
        // Share 1: the iCloud-link (moment share) container. Share 2: the Shared Library.
        self.ins(
            "ZSHARE",
            vec![
                ("Z_PK", int(1)),
                ("Z_ENT", int(ENT_SHARE)),
                ("Z_OPT", int(1)),
                ("ZSCOPETYPE", int(1)),
                ("ZSTATUS", int(1)),
                ("ZSCOPEIDENTIFIER", txt("CMM-SHARE-1")),
                ("ZTITLE", txt("Weekend")),
            ],
        )?;
        if self.plan.version >= 16 {
            self.ins(
                "ZSHARE",
                vec![
                    ("Z_PK", int(2)),
                    ("Z_ENT", int(ENT_SHARE)),
                    ("Z_OPT", int(1)),
                    ("ZSCOPETYPE", int(4)),
                    ("ZSTATUS", int(3)),
                    (
                        "ZSCOPEIDENTIFIER",
                        txt("SharedSync-7D1C5F0E-2B8A-4F3C-9E61-0A5B7C3D2E1F"),
                    ),
                ],
            )?;
            self.ins(
                "ZSHAREPARTICIPANT",
                vec![
                    ("Z_PK", int(1)),
                    ("Z_ENT", int(ENT_PARTICIPANT)),
                    ("Z_OPT", int(1)),
                    ("ZISCURRENTUSER", int(1)),
                    ("ZROLE", int(1)),
                    ("ZSHARE", int(2)),
                    ("ZUUID", txt("ME")),
                ],
            )?;
            self.ins(
                "ZSHAREPARTICIPANT",
                vec![
                    ("Z_PK", int(2)),
                    ("Z_ENT", int(ENT_PARTICIPANT)),
                    ("Z_OPT", int(1)),
                    ("ZISCURRENTUSER", int(0)),
                    ("ZROLE", int(2)),
                    ("ZSHARE", int(2)),
                    ("ZUUID", txt("PARTNER")),
                ],
            )?;
        }
        let album_ent = self.m.album;
        self.ins(
            "ZGENERICALBUM",
            vec![
                ("Z_PK", int(1)),
                ("Z_ENT", int(album_ent)),
                ("Z_OPT", int(1)),
                ("ZKIND", int(2)),
                ("ZTRASHEDSTATE", int(0)),
                ("ZTITLE", txt("Favourites 2023")),
                ("ZUUID", txt("ALBUM-USER-1")),
            ],
        )?;
        self.ins(
            "ZGENERICALBUM",
            vec![
                ("Z_PK", int(2)),
                ("Z_ENT", int(album_ent)),
                ("Z_OPT", int(1)),
                ("ZKIND", int(1505)),
                ("ZTRASHEDSTATE", int(0)),
                ("ZCLOUDGUID", txt("SHARED-ALBUM-GUID")),
                ("ZTITLE", txt("Family")),
                ("ZUUID", txt("ALBUM-SHARED-1")),
            ],
        )?;
        Ok(())
    }

    fn primary_keys(&self) -> anyhow::Result<()> {
        let n_assets = self.plan.assets.len() as i64;
        let v = self.plan.version;
        let mut ents: Vec<(i64, &str, i64)> = vec![
            (ENT_ATTRS, "AdditionalAssetAttributes", 0),
            (self.m.asset, "Asset", 0),
            (self.m.album - 1, "GenericAlbum", 0),
            (self.m.album, "Album", self.m.album - 1),
            (ENT_MASTER, "CloudMaster", 0),
            (ENT_RESOURCE, "InternalResource", 0),
            (ENT_SHARE, "Share", 0),
            (ENT_ADJUSTMENT, "UnmanagedAdjustment", 0),
        ];
        if v >= 16 {
            ents.push((ENT_PARTICIPANT, "ShareParticipant", 0));
            ents.push((ENT_CONTRIBUTOR, "AssetContributor", 0));
        }
        if v <= 14 {
            ents.push((ENT_UTI, "UniformTypeIdentifier", 0));
        }
        for (ent, name, sup) in ents {
            let max = match name {
                "Asset" | "AdditionalAssetAttributes" => n_assets,
                "InternalResource" => self.next_resource_pk - 1,
                "CloudMaster" => self.next_master_pk - 1,
                "UnmanagedAdjustment" => self.next_adjustment_pk - 1,
                "AssetContributor" => self.next_contributor_pk - 1,
                "Album" => 2,
                _ => 2,
            };
            self.conn.execute(
                "INSERT INTO Z_PRIMARYKEY (Z_ENT, Z_NAME, Z_SUPER, Z_MAX) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(Z_ENT) DO UPDATE SET Z_MAX = excluded.Z_MAX",
                rusqlite::params![ent, name, sup, max],
            )?;
        }
        Ok(())
    }

    fn asset(&mut self, a: &PAsset, part1: bool) -> anyhow::Result<()> {
        let trashed_now = a.trashed && !(part1 && a.late_trash);
        let added = a.created.map(|c| c + 30.0);
        let mut master = Value::Null;
        if let Some(guid) = &a.cloud_guid {
            let pk = self.next_master_pk;
            self.next_master_pk += 1;
            self.ins(
                "ZCLOUDMASTER",
                vec![
                    ("Z_PK", int(pk)),
                    ("Z_ENT", int(ENT_MASTER)),
                    ("Z_OPT", int(1)),
                    ("ZCLOUDLOCALSTATE", int(3)),
                    ("ZCREATIONDATE", opt_real(a.created)),
                    ("ZCLOUDMASTERGUID", txt(&format!("M{guid}"))),
                    ("ZORIGINALFILENAME", opt_txt(a.original_filename.as_deref())),
                    ("ZUNIFORMTYPEIDENTIFIER", txt(a.uti)),
                ],
            )?;
            master = int(pk);
        }
        let mut adjustment = Value::Null;
        if a.edited {
            let pk = self.next_adjustment_pk;
            self.next_adjustment_pk += 1;
            self.ins(
                "ZUNMANAGEDADJUSTMENT",
                vec![
                    ("Z_PK", int(pk)),
                    ("Z_ENT", int(ENT_ADJUSTMENT)),
                    ("Z_OPT", int(1)),
                    ("ZASSETATTRIBUTES", int(a.pk)),
                    ("ZADJUSTMENTTIMESTAMP", opt_real(added)),
                    ("ZADJUSTMENTFORMATIDENTIFIER", txt("com.apple.photo")),
                    ("ZEDITORLOCALIZEDNAME", txt("Photos")),
                ],
            )?;
            adjustment = int(pk);
        }
        let table = self.asset_table;
        self.ins(
            table,
            vec![
                ("Z_PK", int(a.pk)),
                ("Z_ENT", int(self.m.asset)),
                ("Z_OPT", int(if part1 { 3 } else { 1 })),
                (
                    "ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE",
                    int(i64::from(a.spl.is_some())),
                ),
                ("ZADJUSTMENTSSTATE", int(if a.edited { 2 } else { 0 })),
                ("ZAVALANCHEKIND", int(i64::from(a.burst.is_some()))),
                (
                    "ZAVALANCHEPICKTYPE",
                    int(a.burst.as_ref().map_or(0, |b| b.1)),
                ),
                ("ZBUNDLESCOPE", int(a.bundle_scope)),
                ("ZCLOUDLOCALSTATE", int(a.cloud_local_state)),
                ("ZCLOUDPLACEHOLDERKIND", int(0)),
                ("ZCOMPLETE", int(1)),
                ("ZCUSTOMRENDEREDVALUE", int(0)),
                ("ZDEFERREDPROCESSINGNEEDED", int(0)),
                ("ZDEPTHSTATES", int(0)),
                ("ZDEPTHTYPE", int(0)),
                ("ZDUPLICATEASSETVISIBILITYSTATE", int(0)),
                ("ZHASADJUSTMENTS", int(i64::from(a.edited))),
                ("ZHDRTYPE", int(0)),
                ("ZHEIGHT", int(a.height)),
                ("ZHIDDEN", int(i64::from(a.hidden))),
                ("ZISDETECTEDSCREENSHOT", int(i64::from(a.screenshot))),
                ("ZKIND", int(a.kind)),
                ("ZKINDSUBTYPE", int(a.subtype)),
                ("ZLIBRARYSCOPESHARESTATE", int(0)),
                ("ZPLAYBACKSTYLE", int(a.playback)),
                ("ZSAVEDASSETTYPE", int(a.saved_type)),
                ("ZSPATIALTYPE", int(0)),
                (
                    "ZSYNDICATIONSTATE",
                    int(if a.syndication.is_some() {
                        if a.saved_type == 12 {
                            0
                        } else {
                            2
                        }
                    } else {
                        0
                    }),
                ),
                ("ZTRASHEDSTATE", int(i64::from(trashed_now))),
                ("ZVISIBILITYSTATE", int(a.visibility)),
                ("ZWIDTH", int(a.width)),
                ("ZADDITIONALATTRIBUTES", int(a.pk)),
                (
                    "ZLIBRARYSCOPE",
                    if a.spl.is_some() { int(2) } else { Value::Null },
                ),
                ("ZMASTER", master),
                (
                    "ZMOMENTSHARE",
                    if a.moment_share { int(1) } else { Value::Null },
                ),
                ("ZADDEDDATE", opt_real(added)),
                (
                    "ZADJUSTMENTTIMESTAMP",
                    if a.edited {
                        opt_real(added)
                    } else {
                        Value::Null
                    },
                ),
                (
                    "ZCLOUDBATCHPUBLISHDATE",
                    if a.shared_album {
                        opt_real(added)
                    } else {
                        Value::Null
                    },
                ),
                ("ZDATECREATED", opt_real(a.created)),
                ("ZMODIFICATIONDATE", opt_real(added)),
                (
                    "ZTRASHEDDATE",
                    if trashed_now {
                        opt_real(added)
                    } else {
                        Value::Null
                    },
                ),
                ("ZDURATION", Value::Real(a.duration)),
                ("ZLATITUDE", Value::Real(-180.0)),
                ("ZLONGITUDE", Value::Real(-180.0)),
                (
                    "ZAVALANCHEUUID",
                    opt_txt(a.burst.as_ref().map(|b| b.0.as_str())),
                ),
                ("ZCLOUDASSETGUID", opt_txt(a.cloud_guid.as_deref())),
                ("ZDIRECTORY", opt_txt(a.dir.as_deref())),
                ("ZFILENAME", opt_txt(a.filename.as_deref())),
                ("ZMEDIAGROUPUUID", opt_txt(a.media_group.as_deref())),
                ("ZUNIFORMTYPEIDENTIFIER", txt(a.uti)),
                ("ZUUID", txt(&a.uuid)),
            ],
        )?;
        let fingerprint = format!("A{}", &a.uuid[..8]);
        self.ins(
            "ZADDITIONALASSETATTRIBUTES",
            vec![
                ("Z_PK", int(a.pk)),
                ("Z_ENT", int(ENT_ATTRS)),
                ("Z_OPT", int(1)),
                ("ZORIGINALFILESIZE", int(a.original_size as i64)),
                ("ZORIGINALHEIGHT", int(a.height)),
                ("ZORIGINALWIDTH", int(a.width)),
                ("ZORIGINALORIENTATION", int(1)),
                ("ZORIGINALRESOURCECHOICE", int(a.raw_choice)),
                (
                    "ZSYNDICATIONHISTORY",
                    a.syndication.as_ref().map_or(Value::Null, |s| int(s.1)),
                ),
                ("ZTIMEZONEOFFSET", int(a.tz_offset)),
                ("ZASSET", int(a.pk)),
                ("ZUNMANAGEDADJUSTMENT", adjustment),
                (
                    "ZADJUSTEDFINGERPRINT",
                    if a.edited {
                        txt(&format!("{fingerprint}e"))
                    } else {
                        Value::Null
                    },
                ),
                (
                    "ZADJUSTEDSTABLEHASH",
                    if a.edited {
                        txt(&format!("{fingerprint}e"))
                    } else {
                        Value::Null
                    },
                ),
                ("ZCREATORBUNDLEID", txt("com.apple.camera")),
                ("ZIMPORTEDBYBUNDLEIDENTIFIER", txt("com.apple.camera")),
                ("ZMASTERFINGERPRINT", txt(&fingerprint)),
                ("ZORIGINALFILENAME", opt_txt(a.original_filename.as_deref())),
                ("ZORIGINALSTABLEHASH", txt(&fingerprint)),
                (
                    "ZSYNDICATIONIDENTIFIER",
                    opt_txt(a.syndication.as_ref().map(|s| s.0.as_str())),
                ),
                ("ZTIMEZONENAME", txt(&a.tz_name)),
            ],
        )?;
        for (i, r) in a.resources.iter().enumerate() {
            let purge_later = part1 && a.late_purge && r.role == Some(Role::Primary);
            let pk = self.resource(a, i, r, purge_later)?;
            if r.role == Some(Role::Primary) {
                self.primary_resource_pk.insert(a.pk, pk);
            }
        }
        if let Some(mine) = a.spl {
            let pk = self.next_contributor_pk;
            self.next_contributor_pk += 1;
            let fk = format!("Z{}LIBRARYSCOPEASSETCONTRIBUTORS", self.m.asset);
            self.ins(
                "ZASSETCONTRIBUTOR",
                vec![
                    ("Z_PK", int(pk)),
                    ("Z_ENT", int(ENT_CONTRIBUTOR)),
                    ("Z_OPT", int(1)),
                    ("ZPARTICIPANT", int(if mine { 1 } else { 2 })),
                    (leak(&fk), int(a.pk)),
                ],
            )?;
        }
        let album = if a.shared_album {
            Some(2)
        } else if a.pk % 7 == 0 && a.excluded.is_none() {
            Some(1)
        } else {
            None
        };
        if let Some(album) = album {
            let (al, at) = (self.m.album, self.m.asset);
            self.conn.execute(
                &format!("INSERT INTO Z_{al}ASSETS (Z_{al}ALBUMS, Z_{at}ASSETS, Z_FOK_{at}ASSETS) VALUES (?1, ?2, ?3)"),
                rusqlite::params![album, a.pk, a.pk * 1024],
            )?;
        }
        Ok(())
    }

    /// One `ZINTERNALRESOURCE` row; its columns follow from the planned intent.
    fn resource(
        &mut self,
        a: &PAsset,
        i: usize,
        r: &PResource,
        purge_later: bool,
    ) -> anyhow::Result<i64> {
        let pk = self.next_resource_pk;
        self.next_resource_pk += 1;
        let avail = if purge_later { Avail::Local } else { r.avail };
        let la: i64 = match avail {
            Avail::Local => 1,
            Avail::IcloudOnly | Avail::Unavailable => -1,
            Avail::Syndication => -32768,
        };
        let ra: i64 = match (r.avail, r.upload) {
            (Avail::IcloudOnly, _) | (_, Upload::InIcloud) | (Avail::Syndication, _) => 1,
            _ => 0,
        };
        let fingerprint = match (r.avail, r.upload) {
            (Avail::Syndication, _) | (_, Upload::Off) => None,
            _ => Some(format!("F{}{i:02}", &a.uuid[..8])),
        };
        let cloud_state: i64 = match r.upload {
            Upload::InIcloud => 3,
            Upload::Pending => 1,
            _ => 0,
        };
        let local = avail == Avail::Local;
        let file_id = if local {
            self.next_file_id += 1;
            self.next_file_id
        } else {
            -1
        };
        let key: Value = if local {
            // Opaque locator (spec §8.7): only NULL / non-NULL matters.
            Value::Blob(vec![
                0x03,
                0x00,
                (pk >> 24) as u8,
                (pk >> 16) as u8,
                (pk >> 8) as u8,
                pk as u8,
            ])
        } else {
            Value::Null
        };
        let uti = self.uti_pk.get(r.uti).map_or(Value::Null, |p| int(*p));
        self.ins(
            "ZINTERNALRESOURCE",
            vec![
                ("Z_PK", int(pk)),
                ("Z_ENT", int(ENT_RESOURCE)),
                ("Z_OPT", int(1)),
                ("ZCLOUDSOURCETYPE", int(0)),
                ("ZCOMPACTUTI", int(compact_uti(r.uti))),
                ("ZDATASTORECLASSID", int(r.class)),
                ("ZDATASTORESUBTYPE", int(r.subtype)),
                ("ZLOCALAVAILABILITY", int(la)),
                ("ZLOCALAVAILABILITYTARGET", int(0)),
                ("ZRECIPEID", int(r.recipe)),
                ("ZREMOTEAVAILABILITY", int(ra)),
                ("ZREMOTEAVAILABILITYTARGET", int(0)),
                ("ZRESOURCETYPE", int(r.rtype)),
                ("ZTRASHEDSTATE", int(0)),
                ("ZUNORIENTEDHEIGHT", int(a.height)),
                ("ZUNORIENTEDWIDTH", int(a.width)),
                ("ZUTICONFORMANCEHINT", int(0)),
                ("ZVERSION", int(r.version)),
                ("ZCLOUDLOCALSTATE", int(cloud_state)),
                ("ZDATALENGTH", int(r.len as i64)),
                ("ZFILEID", int(file_id)),
                ("ZASSET", int(a.pk)),
                ("ZUNIFORMTYPEIDENTIFIER", uti),
                ("ZCLOUDMASTERDATECREATED", opt_real(a.created)),
                (
                    "ZCODECFOURCHARCODENAME",
                    if r.uti.contains("movie") || r.uti.contains("mpeg") {
                        txt("hvc1")
                    } else {
                        Value::Null
                    },
                ),
                ("ZFINGERPRINT", opt_txt(fingerprint.as_deref())),
                ("ZSTABLEHASH", opt_txt(fingerprint.as_deref())),
                ("ZDATASTOREKEYDATA", key),
            ],
        )?;
        Ok(pk)
    }

    fn late_changes(&self) -> anyhow::Result<()> {
        for a in &self.plan.assets[..self.plan.wal_start] {
            if a.late_purge {
                if let Some(pk) = self.primary_resource_pk.get(&a.pk) {
                    self.conn.execute(
                        "UPDATE ZINTERNALRESOURCE SET ZLOCALAVAILABILITY = -1, ZDATASTOREKEYDATA = NULL, \
                         ZFILEID = -1, Z_OPT = Z_OPT + 1 WHERE Z_PK = ?1",
                        [pk],
                    )?;
                }
            }
            if a.late_trash {
                let trashed = a.created.map(|c| c + 86_400.0);
                self.conn.execute(
                    &format!(
                        "UPDATE {} SET ZTRASHEDSTATE = 1, ZTRASHEDDATE = ?1, Z_OPT = Z_OPT + 1 WHERE Z_PK = ?2",
                        self.asset_table
                    ),
                    rusqlite::params![trashed, a.pk],
                )?;
            }
        }
        Ok(())
    }
}

/// A stand-in for iOS 15+'s encoded `ZCOMPACTUTI` (the real encoding is not documented).
fn compact_uti(uti: &str) -> i64 {
    uti.bytes()
        .fold(7i64, |h, b| (h * 31 + i64::from(b)) % 1_000_003)
}

/// Rewrites the WAL's salts from `seed` and recomputes every checksum, so the same seed gives
/// a byte-identical WAL. Frames of an older generation are left alone (there are none here).
fn resalt_wal(path: &Path, seed: u64) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    anyhow::ensure!(
        bytes.len() >= 32,
        "internal error: {} has no WAL header",
        path.display()
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let big_endian = be(&bytes[0..4]) & 1 == 1;
    let page = be(&bytes[8..12]) as usize;
    let old_salt = (be(&bytes[16..20]), be(&bytes[20..24]));
    let new_salt = ((seed as u32) | 1, (seed >> 32) as u32 ^ 0x5EED_F00D);
    bytes[16..20].copy_from_slice(&new_salt.0.to_be_bytes());
    bytes[20..24].copy_from_slice(&new_salt.1.to_be_bytes());
    let mut ck = checksum(big_endian, &bytes[0..24], (0, 0));
    bytes[24..28].copy_from_slice(&ck.0.to_be_bytes());
    bytes[28..32].copy_from_slice(&ck.1.to_be_bytes());
    let frame = 24 + page;
    let mut off = 32;
    while off + frame <= bytes.len() {
        if (
            be(&bytes[off + 8..off + 12]),
            be(&bytes[off + 12..off + 16]),
        ) != old_salt
        {
            break;
        }
        bytes[off + 8..off + 12].copy_from_slice(&new_salt.0.to_be_bytes());
        bytes[off + 12..off + 16].copy_from_slice(&new_salt.1.to_be_bytes());
        ck = checksum(big_endian, &bytes[off..off + 8], ck);
        ck = checksum(big_endian, &bytes[off + 24..off + frame], ck);
        bytes[off + 16..off + 20].copy_from_slice(&ck.0.to_be_bytes());
        bytes[off + 20..off + 24].copy_from_slice(&ck.1.to_be_bytes());
        off += frame;
    }
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// SQLite's WAL checksum (fileformat2 §4.1).
fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for c in data.chunks_exact(8) {
        let w = |b: &[u8]| {
            let a = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(a)
            } else {
                u32::from_le_bytes(a)
            }
        };
        s1 = s1.wrapping_add(w(&c[0..4])).wrapping_add(s2);
        s2 = s2.wrapping_add(w(&c[4..8])).wrapping_add(s1);
    }
    (s1, s2)
}
