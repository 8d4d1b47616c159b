//! The starter-corpus generator: renders the images and writes the documents
//! of `corpus/`, and its `manifest.csv`.
//!
//! ```text
//! make corpus            # = cargo run --release --features corpusgen --example make_corpus -- corpus
//! ```
//!
//! Needs the CJK font of Debian's `fonts-wqy-microhei` (the Makefile installs
//! it). Output is deterministic: the same generator and font give the same
//! bytes. Every item is synthetic — poster-style pictures and short texts on
//! the themes that published studies found censored on WeChat (sensitive) and
//! on everyday themes of the same style and size (benign). To extend the
//! corpus, add a row to `IMAGES` or `DOCS` below, or import your own files
//! with `chatprobe corpus import`.

use std::path::PathBuf;

use ab_glyph::{FontRef, PxScale};
use chatprobe::corpus::fresh::minimal_docx;
use image::{DynamicImage, Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_ellipse_mut, draw_filled_rect_mut, draw_line_segment_mut,
    draw_polygon_mut, draw_text_mut, text_size,
};
use imageproc::point::Point;
use imageproc::rect::Rect;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
const DATE: &str = "2026-11-23";
const GEN: &str = "synthetic, rendered by chatprobe examples/make_corpus.rs";

/// The picture drawn behind the text.
#[derive(Clone, Copy)]
enum Motif {
    Candles,
    Tanks,
    Gate,
    Chair,
    Scroll,
    Wheel,
    Gavel,
    Umbrellas,
    Fence,
    Mountains,
    Mask,
    Flowers,
    Sun,
    Lanterns,
    Pot,
    Panda,
    Hills,
    Cake,
    Cup,
    Ball,
    Moon,
    Books,
    Skyline,
}

/// (id, label, topic, headline, subtitle, motif, png?, theme source)
type ImageSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Motif,
    bool,
    &'static str,
);

const IMAGES: [ImageSpec; 24] = [
    (
        "img-s01",
        "sensitive",
        "june4",
        "六四 悼念",
        "八九民运 三十周年 烛光永不熄灭",
        Motif::Candles,
        false,
        "June 4th vigil imagery; Citizen Lab, (Can't) Picture This (2018)",
    ),
    (
        "img-s02",
        "sensitive",
        "june4",
        "坦克人 1989",
        "长安街 一九八九年六月五日",
        Motif::Tanks,
        true,
        "Tank Man; Citizen Lab, (Can't) Picture This (2018)",
    ),
    (
        "img-s03",
        "sensitive",
        "june4",
        "天安门 八九六四",
        "学生 民主 自由",
        Motif::Gate,
        false,
        "Tiananmen 1989; Citizen Lab, (Can't) Picture This (2018)",
    ),
    (
        "img-s04",
        "sensitive",
        "liu-xiaobo",
        "刘晓波 诺贝尔和平奖",
        "空椅子 二〇一〇年 奥斯陆",
        Motif::Chair,
        true,
        "Liu Xiaobo empty chair; Citizen Lab, Remembering Liu Xiaobo (2017)",
    ),
    (
        "img-s05",
        "sensitive",
        "liu-xiaobo",
        "零八宪章",
        "自由 人权 平等 共和 民主 宪政",
        Motif::Scroll,
        false,
        "Charter 08; Citizen Lab, Remembering Liu Xiaobo (2017)",
    ),
    (
        "img-s06",
        "sensitive",
        "falun-gong",
        "法轮大法好",
        "真善忍 反迫害 七二〇",
        Motif::Wheel,
        true,
        "Falun Gong; Citizen Lab, One App, Two Systems (2016)",
    ),
    (
        "img-s07",
        "sensitive",
        "709-crackdown",
        "709大抓捕",
        "维权律师 王全璋 江天勇 李和平",
        Motif::Gavel,
        false,
        "709 crackdown; Citizen Lab, We (Can't) Chat (2017)",
    ),
    (
        "img-s08",
        "sensitive",
        "hong-kong",
        "反送中",
        "光复香港 时代革命 五大诉求",
        Motif::Umbrellas,
        true,
        "Hong Kong protests; Citizen Lab, (Can't) Picture This 2 (2019)",
    ),
    (
        "img-s09",
        "sensitive",
        "hong-kong",
        "雨伞运动",
        "我要真普选 占领中环",
        Motif::Umbrellas,
        false,
        "Umbrella Movement; Citizen Lab, One App, Two Systems (2016)",
    ),
    (
        "img-s10",
        "sensitive",
        "xinjiang",
        "新疆 再教育营",
        "维吾尔 拘留 职业技能教育培训中心",
        Motif::Fence,
        true,
        "Xinjiang camps; themes of WeChat censorship studies",
    ),
    (
        "img-s11",
        "sensitive",
        "tibet",
        "达赖喇嘛",
        "西藏 自由 流亡",
        Motif::Mountains,
        false,
        "Tibet / Dalai Lama; Citizen Lab, One App, Two Systems (2016)",
    ),
    (
        "img-s12",
        "sensitive",
        "covid",
        "李文亮 吹哨人",
        "武汉 不明肺炎 言论自由",
        Motif::Mask,
        true,
        "Li Wenliang; Citizen Lab, Censored Contagion (2020)",
    ),
    (
        "img-b01",
        "benign",
        "nature",
        "春天 花开",
        "公园里的樱花 一年一度",
        Motif::Flowers,
        false,
        "everyday control",
    ),
    (
        "img-b02",
        "benign",
        "weather",
        "今日天气 晴",
        "最高气温 二十六度 微风",
        Motif::Sun,
        true,
        "everyday control",
    ),
    (
        "img-b03",
        "benign",
        "festival",
        "春节快乐",
        "阖家团圆 万事如意",
        Motif::Lanterns,
        false,
        "everyday control",
    ),
    (
        "img-b04",
        "benign",
        "food",
        "火锅聚餐",
        "周五晚上 老地方见",
        Motif::Pot,
        true,
        "everyday control",
    ),
    (
        "img-b05",
        "benign",
        "animals",
        "熊猫宝宝",
        "成都基地 一周岁生日",
        Motif::Panda,
        false,
        "everyday control",
    ),
    (
        "img-b06",
        "benign",
        "travel",
        "周末爬山",
        "香山红叶 早上八点集合",
        Motif::Hills,
        true,
        "everyday control",
    ),
    (
        "img-b07",
        "benign",
        "family",
        "生日快乐",
        "祝你 天天开心",
        Motif::Cake,
        false,
        "everyday control",
    ),
    (
        "img-b08",
        "benign",
        "food",
        "咖啡时光",
        "新店开业 第二杯半价",
        Motif::Cup,
        true,
        "everyday control",
    ),
    (
        "img-b09",
        "benign",
        "sports",
        "足球比赛",
        "周六下午 三点开球",
        Motif::Ball,
        false,
        "everyday control",
    ),
    (
        "img-b10",
        "benign",
        "festival",
        "中秋月饼",
        "花好月圆 人团圆",
        Motif::Moon,
        true,
        "everyday control",
    ),
    (
        "img-b11",
        "benign",
        "study",
        "读书分享会",
        "本月主题 科幻小说",
        Motif::Books,
        false,
        "everyday control",
    ),
    (
        "img-b12",
        "benign",
        "city",
        "城市夜景",
        "外滩 灯光秀 今晚七点",
        Motif::Skyline,
        true,
        "everyday control",
    ),
];

/// (id, label, topic, extension, title, paragraphs, theme source)
type DocSpec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

const DOCS: [DocSpec; 12] = [
    ("doc-s01", "sensitive", "june4", "txt", "六四天安门事件三十周年回顾", &[
        "一九八九年六月四日凌晨，军队进入天安门广场，镇压了持续数周的学生民主运动。",
        "坦克人的照片至今仍被审查。天安门母亲群体多年来要求公开真相、依法赔偿、追究责任。",
        "每年六四，香港维多利亚公园的烛光悼念活动都会吸引数万人参加。",
    ], "June 4th; Citizen Lab, We Chat, They Watch (2020)"),
    ("doc-s02", "sensitive", "liu-xiaobo", "docx", "刘晓波与零八宪章", &[
        "刘晓波是《零八宪章》的主要起草人之一，二〇〇九年以煽动颠覆国家政权罪被判处十一年徒刑。",
        "二〇一〇年他获得诺贝尔和平奖，颁奖典礼上留下了一把空椅子。",
        "二〇一七年七月刘晓波病逝，妻子刘霞长期遭软禁。",
    ], "Liu Xiaobo; Citizen Lab, Remembering Liu Xiaobo (2017)"),
    ("doc-s03", "sensitive", "falun-gong", "pdf", "法轮功学员人权状况报告", &[
        "一九九九年七月二十日起，法轮功遭到全面取缔，大批学员被拘押。",
        "报告记录了劳教所中的酷刑指控以及家属的申诉经过。",
        "法轮大法学员在海外持续举行和平抗议活动。",
    ], "Falun Gong; Citizen Lab, One App, Two Systems (2016)"),
    ("doc-s04", "sensitive", "709-crackdown", "txt", "709大抓捕：维权律师名单", &[
        "二〇一五年七月九日起，全国三百多名律师和维权人士被约谈、拘留或失踪。",
        "王全璋律师被羁押一千多天后以颠覆国家政权罪受审，江天勇、李和平亦被判刑。",
        "家属发起的寻人行动在社交媒体上被大量删除。",
    ], "709 crackdown; Citizen Lab, We (Can't) Chat (2017)"),
    ("doc-s05", "sensitive", "hong-kong", "docx", "香港反送中运动时间线", &[
        "二〇一九年六月，数以百万计的香港市民上街反对《逃犯条例》修订。",
        "示威者提出五大诉求，口号为光复香港，时代革命。",
        "七月一日示威者进入立法会，十一月理工大学被警方包围。",
    ], "Hong Kong protests; Citizen Lab, (Can't) Picture This 2 (2019)"),
    ("doc-s06", "sensitive", "xinjiang", "pdf", "新疆再教育营调查摘要", &[
        "据估计，超过一百万维吾尔族和其他穆斯林被关押在新疆的再教育营中。",
        "官方称之为职业技能教育培训中心，但泄露的文件显示其实行严格的封闭管理。",
        "家属在海外寻找失去联系的亲人。",
    ], "Xinjiang; themes of WeChat censorship studies"),
    ("doc-b01", "benign", "weather", "txt", "北京本周天气预报", &[
        "周一至周三以晴为主，最高气温二十二度，早晚温差较大。",
        "周四有小雨，出门请携带雨具。周末天气转好，适合户外活动。",
        "空气质量总体良好，紫外线强度中等。",
    ], "everyday control"),
    ("doc-b02", "benign", "food", "docx", "家常红烧肉做法", &[
        "五花肉切块，冷水下锅焯水，捞出沥干。",
        "锅中放少许油和冰糖，小火炒出糖色，再放入肉块翻炒上色。",
        "加入生抽、老抽、料酒和热水，小火炖一个小时，大火收汁即可。",
    ], "everyday control"),
    ("doc-b03", "benign", "travel", "pdf", "杭州西湖三日游攻略", &[
        "第一天：断桥残雪、白堤、孤山，傍晚在湖边看日落。",
        "第二天：灵隐寺和飞来峰，下午去龙井村喝茶。",
        "第三天：骑自行车环湖，晚上逛河坊街品尝小吃。",
    ], "everyday control"),
    ("doc-b04", "benign", "sports", "txt", "周末足球联赛赛程", &[
        "周六下午三点：蓝队对白队，地点在体育中心二号场。",
        "周日上午十点：红队对黄队，请各队提前半小时到场热身。",
        "比赛结束后在食堂聚餐，欢迎家属参加。",
    ], "everyday control"),
    ("doc-b05", "benign", "festival", "docx", "春节联欢会安排", &[
        "联欢会定于腊月二十八晚上七点在公司礼堂举行。",
        "节目包括合唱、小品、魔术和抽奖，每个部门至少准备一个节目。",
        "请大家在本周五前把节目名单报给行政部。",
    ], "everyday control"),
    ("doc-b06", "benign", "study", "pdf", "英语学习小组计划", &[
        "每周二和周四晚上八点在线上见面，每次一个小时。",
        "本月阅读一本英文小说，每次讨论两个章节。",
        "每位成员轮流主持，并准备五个讨论问题。",
    ], "everyday control"),
];

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    let font_data = std::fs::read(FONT).unwrap_or_else(|e| {
        panic!("{FONT}: {e} — install Debian's fonts-wqy-microhei (make corpus does)")
    });
    let font = FontRef::try_from_slice_and_index(&font_data, 0).expect("wqy-microhei font");
    std::fs::create_dir_all(out.join("images")).unwrap();
    std::fs::create_dir_all(out.join("documents")).unwrap();
    let mut manifest = csv::Writer::from_path(out.join("manifest.csv")).unwrap();
    manifest
        .write_record([
            "id",
            "kind",
            "path",
            "label",
            "topic",
            "lang",
            "source",
            "date_added",
            "notes",
        ])
        .unwrap();
    for (n, (id, label, topic, head, sub, motif, png, theme)) in IMAGES.iter().enumerate() {
        let img = render(&font, n as u64, head, sub, *motif, *png);
        let rel = format!("images/{id}.{}", if *png { "png" } else { "jpg" });
        let bytes = if *png {
            let mut b = Vec::new();
            DynamicImage::ImageRgb8(img)
                .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
                .unwrap();
            b
        } else {
            let mut b = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, 88)
                .encode_image(&img)
                .unwrap();
            b
        };
        std::fs::write(out.join(&rel), bytes).unwrap();
        let notes = format!("text: {head} / {sub}");
        manifest
            .write_record([
                id,
                "image",
                rel.as_str(),
                label,
                topic,
                "zh-Hans",
                format!("{GEN}; theme: {theme}").as_str(),
                DATE,
                notes.as_str(),
            ])
            .unwrap();
    }
    for (id, label, topic, ext, title, paras, theme) in DOCS.iter() {
        let rel = format!("documents/{id}.{ext}");
        let bytes = match *ext {
            "txt" => {
                let mut s = format!("{title}\n\n");
                for p in paras.iter() {
                    s.push_str(p);
                    s.push_str("\n\n");
                }
                s.trim_end().to_string().into_bytes()
            }
            "docx" => minimal_docx(title, paras),
            "pdf" => pdf(&font_data, title, paras),
            _ => unreachable!(),
        };
        std::fs::write(out.join(&rel), bytes).unwrap();
        manifest
            .write_record([
                id,
                "document",
                rel.as_str(),
                label,
                topic,
                "zh-Hans",
                format!("{GEN}; theme: {theme}").as_str(),
                DATE,
                format!("title: {title}").as_str(),
            ])
            .unwrap();
    }
    manifest.flush().unwrap();
    eprintln!(
        "wrote {} images and {} documents under {}",
        IMAGES.len(),
        DOCS.len(),
        out.display()
    );
}

fn pdf(font_data: &[u8], title: &str, paras: &[&str]) -> Vec<u8> {
    use printpdf::*;
    let mut doc = PdfDocument::new(title);
    let font = ParsedFont::from_bytes(font_data, 0, &mut Vec::new()).expect("font parses");
    let font_id = doc.add_font(&font);
    let mut ops = vec![
        Op::StartTextSection,
        Op::SetTextCursor {
            pos: Point {
                x: Mm(20.0).into(),
                y: Mm(270.0).into(),
            },
        },
        Op::SetLineHeight { lh: Pt(22.0) },
        Op::SetFont {
            font: PdfFontHandle::External(font_id.clone()),
            size: Pt(18.0),
        },
        Op::ShowText {
            items: vec![TextItem::Text(title.to_string())],
        },
        Op::AddLineBreak,
        Op::AddLineBreak,
        Op::SetFont {
            font: PdfFontHandle::External(font_id.clone()),
            size: Pt(11.0),
        },
    ];
    for p in paras {
        // About 40 CJK characters fit a line of an A4 page at 11 pt.
        let chars: Vec<char> = p.chars().collect();
        for line in chars.chunks(40) {
            ops.push(Op::ShowText {
                items: vec![TextItem::Text(line.iter().collect())],
            });
            ops.push(Op::AddLineBreak);
        }
        ops.push(Op::AddLineBreak);
    }
    ops.push(Op::EndTextSection);
    let page = PdfPage::new(Mm(210.0), Mm(297.0), ops);
    doc.with_pages(vec![page])
        .save(&PdfSaveOptions::default(), &mut Vec::new())
}

fn render(font: &FontRef, n: u64, head: &str, sub: &str, motif: Motif, png: bool) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(0xC0FFEE + n);
    let portrait = n % 4 == 3;
    let (w, h) = if portrait {
        (600u32, 800u32)
    } else {
        (800, 600)
    };
    let hue: [u8; 3] = [
        rng.random_range(30..200),
        rng.random_range(30..200),
        rng.random_range(30..200),
    ];
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        Rgb([
            (hue[0] as f32 * (1.0 - t) + 235.0 * t) as u8,
            (hue[1] as f32 * (1.0 - t) + 225.0 * t) as u8,
            (hue[2] as f32 * (1.0 - t) + 210.0 * t) as u8,
        ])
    });
    draw_motif(&mut img, motif, &mut rng);
    // A text band with headline and subtitle.
    let band_y = h as i32 * 2 / 3;
    draw_filled_rect_mut(
        &mut img,
        Rect::at(0, band_y).of_size(w, h / 3),
        Rgb([20, 20, 28]),
    );
    let hs = PxScale::from(if portrait { 58.0 } else { 72.0 });
    let (tw, _) = text_size(hs, font, head);
    draw_text_mut(
        &mut img,
        Rgb([250, 240, 200]),
        (w as i32 - tw as i32) / 2,
        band_y + 18,
        hs,
        font,
        head,
    );
    let ss = PxScale::from(if portrait { 26.0 } else { 32.0 });
    let (sw, _) = text_size(ss, font, sub);
    draw_text_mut(
        &mut img,
        Rgb([220, 220, 220]),
        (w as i32 - sw as i32) / 2,
        band_y + 18 + hs.y as i32 + 20,
        ss,
        font,
        sub,
    );
    if !png {
        // Photo-like grain, so JPEG files have realistic sizes.
        for p in img.pixels_mut() {
            for c in p.0.iter_mut() {
                *c = (*c as i16 + rng.random_range(-5i16..=5)).clamp(0, 255) as u8;
            }
        }
    }
    img
}

fn draw_motif(img: &mut RgbImage, motif: Motif, rng: &mut ChaCha8Rng) {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let top = h * 2 / 3;
    let dark = Rgb([40, 40, 48]);
    let warm = Rgb([250, 200, 60]);
    let red = Rgb([200, 30, 30]);
    let white = Rgb([245, 245, 245]);
    let poly = |img: &mut RgbImage, pts: &[(i32, i32)], c: Rgb<u8>| {
        let pts: Vec<Point<i32>> = pts.iter().map(|&(x, y)| Point::new(x, y)).collect();
        draw_polygon_mut(img, &pts, c);
    };
    match motif {
        Motif::Candles | Motif::Lanterns => {
            for i in 0..7 {
                let x = w / 8 * (i + 1);
                let y = top - 60 - rng.random_range(0..120);
                if matches!(motif, Motif::Candles) {
                    draw_filled_rect_mut(
                        img,
                        Rect::at(x - 10, y).of_size(20, (top - y) as u32),
                        white,
                    );
                    draw_filled_ellipse_mut(img, (x, y - 18), 8, 16, warm);
                } else {
                    draw_line_segment_mut(img, (x as f32, 0.0), (x as f32, (y - 30) as f32), dark);
                    draw_filled_ellipse_mut(img, (x, y), 30, 36, red);
                    draw_filled_rect_mut(img, Rect::at(x - 12, y + 34).of_size(24, 10), warm);
                }
            }
        }
        Motif::Tanks => {
            for i in 0..4 {
                let x = 40 + i * (w - 80) / 4;
                let y = top / 3 + i * 20;
                draw_filled_rect_mut(img, Rect::at(x, y).of_size(120, 45), Rgb([70, 80, 60]));
                draw_filled_rect_mut(
                    img,
                    Rect::at(x + 35, y - 25).of_size(50, 28),
                    Rgb([60, 70, 50]),
                );
                draw_filled_rect_mut(
                    img,
                    Rect::at(x + 80, y - 15).of_size(70, 8),
                    Rgb([60, 70, 50]),
                );
            }
            let (mx, my) = (w / 2, top - 90);
            draw_filled_circle_mut(img, (mx, my), 9, dark);
            draw_filled_rect_mut(img, Rect::at(mx - 8, my + 9).of_size(16, 50), white);
            draw_filled_rect_mut(img, Rect::at(mx - 22, my + 25).of_size(12, 18), dark);
            draw_filled_rect_mut(img, Rect::at(mx + 10, my + 25).of_size(12, 18), dark);
        }
        Motif::Gate => {
            draw_filled_rect_mut(
                img,
                Rect::at(w / 6, top / 3).of_size((w * 2 / 3) as u32, (top * 2 / 3) as u32),
                red,
            );
            poly(
                img,
                &[(w / 8, top / 3), (w * 7 / 8, top / 3), (w / 2, top / 8)],
                Rgb([200, 150, 40]),
            );
            for i in 0..5 {
                draw_filled_rect_mut(
                    img,
                    Rect::at(w / 6 + 30 + i * (w * 2 / 3 - 60) / 5, top - 90).of_size(40, 90),
                    dark,
                );
            }
        }
        Motif::Chair => {
            let (x, y) = (w / 2 - 60, top / 4);
            draw_filled_rect_mut(img, Rect::at(x, y).of_size(120, 150), Rgb([120, 70, 40]));
            draw_filled_rect_mut(
                img,
                Rect::at(x - 10, y + 150).of_size(140, 25),
                Rgb([100, 60, 30]),
            );
            draw_filled_rect_mut(
                img,
                Rect::at(x, y + 175).of_size(14, (top - y - 175) as u32),
                Rgb([90, 50, 25]),
            );
            draw_filled_rect_mut(
                img,
                Rect::at(x + 106, y + 175).of_size(14, (top - y - 175) as u32),
                Rgb([90, 50, 25]),
            );
            draw_filled_rect_mut(img, Rect::at(x + 20, y + 40).of_size(80, 30), warm);
        }
        Motif::Scroll | Motif::Books => {
            for i in 0..(if matches!(motif, Motif::Books) { 6 } else { 1 }) {
                let x = if matches!(motif, Motif::Books) {
                    w / 8 + i * w / 8
                } else {
                    w / 4
                };
                let ww = if matches!(motif, Motif::Books) {
                    (w / 10) as u32
                } else {
                    (w / 2) as u32
                };
                let c = Rgb([
                    rng.random_range(120..250),
                    rng.random_range(100..230),
                    rng.random_range(60..200),
                ]);
                draw_filled_rect_mut(
                    img,
                    Rect::at(x, top / 5).of_size(ww, (top * 3 / 4) as u32),
                    c,
                );
                for l in 0..6 {
                    let y = top / 5 + 30 + l * 40;
                    draw_line_segment_mut(
                        img,
                        ((x + 10) as f32, y as f32),
                        ((x + ww as i32 - 10) as f32, y as f32),
                        dark,
                    );
                }
            }
        }
        Motif::Wheel | Motif::Sun | Motif::Moon | Motif::Ball => {
            let (cx, cy, r) = (w / 2, top / 2, top / 3);
            let c = match motif {
                Motif::Moon => Rgb([250, 240, 180]),
                Motif::Ball => white,
                Motif::Sun => warm,
                _ => Rgb([230, 180, 40]),
            };
            draw_filled_circle_mut(img, (cx, cy), r, c);
            if matches!(motif, Motif::Wheel | Motif::Ball) {
                for k in 0..8 {
                    let a = k as f32 * std::f32::consts::PI / 4.0;
                    draw_filled_circle_mut(
                        img,
                        (
                            cx + (a.cos() * r as f32 * 0.65) as i32,
                            cy + (a.sin() * r as f32 * 0.65) as i32,
                        ),
                        r / 6,
                        if matches!(motif, Motif::Ball) {
                            dark
                        } else {
                            red
                        },
                    );
                }
            }
            if matches!(motif, Motif::Sun) {
                for k in 0..12 {
                    let a = k as f32 * std::f32::consts::PI / 6.0;
                    draw_line_segment_mut(
                        img,
                        (
                            cx as f32 + a.cos() * r as f32 * 1.1,
                            cy as f32 + a.sin() * r as f32 * 1.1,
                        ),
                        (
                            cx as f32 + a.cos() * r as f32 * 1.4,
                            cy as f32 + a.sin() * r as f32 * 1.4,
                        ),
                        warm,
                    );
                }
            }
        }
        Motif::Gavel => {
            poly(
                img,
                &[
                    (w / 2 - 150, top / 3),
                    (w / 2 + 60, top / 3 - 60),
                    (w / 2 + 80, top / 3),
                    (w / 2 - 130, top / 3 + 60),
                ],
                Rgb([110, 60, 30]),
            );
            draw_filled_rect_mut(
                img,
                Rect::at(w / 2 - 40, top / 3 + 40).of_size(30, (top / 2) as u32),
                Rgb([90, 50, 25]),
            );
            draw_filled_rect_mut(
                img,
                Rect::at(w / 4, top - 40).of_size((w / 2) as u32, 30),
                dark,
            );
        }
        Motif::Umbrellas => {
            for i in 0..5 {
                let cx = w / 6 * (i + 1);
                let cy = top / 2 + rng.random_range(-40..40);
                let c = if i % 2 == 0 { warm } else { Rgb([40, 40, 40]) };
                poly(img, &[(cx - 60, cy), (cx, cy - 50), (cx + 60, cy)], c);
                draw_line_segment_mut(
                    img,
                    (cx as f32, cy as f32),
                    (cx as f32, (cy + 80) as f32),
                    dark,
                );
            }
        }
        Motif::Fence => {
            for i in 0..(w / 40) {
                draw_filled_rect_mut(
                    img,
                    Rect::at(i * 40, top / 4).of_size(6, (top * 3 / 4) as u32),
                    Rgb([90, 90, 90]),
                );
            }
            for k in 0..4 {
                let y = top / 4 + k * top / 6;
                draw_line_segment_mut(img, (0.0, y as f32), (w as f32, (y + 10) as f32), dark);
            }
            draw_filled_rect_mut(
                img,
                Rect::at(w / 3, top / 2).of_size((w / 3) as u32, (top / 2) as u32),
                Rgb([150, 150, 140]),
            );
        }
        Motif::Mountains | Motif::Hills => {
            let c = if matches!(motif, Motif::Hills) {
                Rgb([200, 90, 40])
            } else {
                Rgb([90, 100, 130])
            };
            poly(img, &[(0, top), (w / 3, top / 5), (w * 2 / 3, top)], c);
            poly(
                img,
                &[(w / 3, top), (w * 2 / 3, top / 3), (w, top)],
                Rgb([c.0[0] / 2 + 60, c.0[1] / 2 + 60, c.0[2] / 2 + 60]),
            );
            if matches!(motif, Motif::Mountains) {
                poly(
                    img,
                    &[
                        (w / 3 - 40, top / 5 + 48),
                        (w / 3, top / 5),
                        (w / 3 + 40, top / 5 + 48),
                    ],
                    white,
                );
            }
        }
        Motif::Mask => {
            draw_filled_circle_mut(img, (w / 2, top / 2), top / 3, Rgb([230, 200, 170]));
            draw_filled_rect_mut(
                img,
                Rect::at(w / 2 - top / 4, top / 2).of_size((top / 2) as u32, (top / 5) as u32),
                Rgb([170, 210, 230]),
            );
            draw_filled_circle_mut(img, (w / 2 - top / 9, top / 2 - top / 10), 8, dark);
            draw_filled_circle_mut(img, (w / 2 + top / 9, top / 2 - top / 10), 8, dark);
        }
        Motif::Flowers => {
            for _ in 0..9 {
                let (x, y) = (rng.random_range(40..w - 40), rng.random_range(40..top - 40));
                for k in 0..5 {
                    let a = k as f32 * 1.2566;
                    draw_filled_circle_mut(
                        img,
                        (x + (a.cos() * 18.0) as i32, y + (a.sin() * 18.0) as i32),
                        14,
                        Rgb([250, 180, 200]),
                    );
                }
                draw_filled_circle_mut(img, (x, y), 9, warm);
            }
        }
        Motif::Pot | Motif::Cup | Motif::Cake => {
            let (x, y) = (w / 2, top / 2);
            let c = match motif {
                Motif::Pot => red,
                Motif::Cup => Rgb([150, 100, 70]),
                _ => Rgb([250, 220, 230]),
            };
            draw_filled_ellipse_mut(img, (x, y + 60), 160, 50, dark);
            draw_filled_rect_mut(img, Rect::at(x - 140, y - 60).of_size(280, 120), c);
            draw_filled_ellipse_mut(
                img,
                (x, y - 60),
                140,
                35,
                Rgb([c.0[0] / 2 + 100, c.0[1] / 2 + 100, c.0[2] / 2 + 100]),
            );
            if matches!(motif, Motif::Cake) {
                for k in 0..5 {
                    draw_filled_rect_mut(
                        img,
                        Rect::at(x - 100 + k * 50, y - 130).of_size(10, 60),
                        white,
                    );
                    draw_filled_ellipse_mut(img, (x - 95 + k * 50, y - 140), 5, 10, warm);
                }
            }
        }
        Motif::Panda => {
            let (x, y) = (w / 2, top / 2 + 20);
            let fur = white;
            draw_filled_circle_mut(img, (x - 90, y - 90), 40, dark);
            draw_filled_circle_mut(img, (x + 90, y - 90), 40, dark);
            draw_filled_circle_mut(img, (x, y), 120, fur);
            draw_filled_ellipse_mut(img, (x - 45, y - 20), 25, 32, dark);
            draw_filled_ellipse_mut(img, (x + 45, y - 20), 25, 32, dark);
            draw_filled_circle_mut(img, (x, y + 40), 14, dark);
        }
        Motif::Skyline => {
            for i in 0..12 {
                let bw = w / 12;
                let bh = rng.random_range(top / 4..top * 9 / 10);
                draw_filled_rect_mut(
                    img,
                    Rect::at(i * bw, top - bh).of_size(bw as u32 - 4, bh as u32),
                    Rgb([30, 30, 60]),
                );
                for k in 0..(bh / 30) {
                    draw_filled_rect_mut(
                        img,
                        Rect::at(i * bw + 8, top - bh + 10 + k * 30).of_size(8, 10),
                        warm,
                    );
                }
            }
        }
    }
}
