"""Realistic, reproducible demo data: people, places, companies, orders and interactions.

Customer number i is always generated from the same seeded random stream, so the same index gives
the same customer, orders and interactions on every run and on every machine. Times are offsets
back from an anchor moment (when the data set was first created), ids are UUIDv7 built from those
times, and phones and emails embed the index, so every natural key is unique and stable too.
Phone, email, birthday and street are written encrypted, with their blind indexes, as
Customer.save() would write them (only the random nonces differ from run to run).

The functions here only produce rows; `seed_demo` writes them to the database.
"""

import bisect
import datetime
import functools
import itertools
import json
import random
from dataclasses import dataclass

from cims.ids import uuid7_int
from customers import search
from customers.fields import encrypted_fields
from customers.models import (
    Channel,
    ConsentPurpose,
    Customer,
    Gender,
    InteractionKind,
    Source,
    Status,
)

UTC = datetime.UTC
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)
SECOND = 1_000_000  # times are handled as integer microseconds since the Unix epoch
DAY = 86_400 * SECOND
HISTORY = 3 * 365 * DAY


def weighted(pairs):
    """(values, cumulative weights) for `pick`, from (value, weight) pairs."""
    values = [value for value, _weight in pairs]
    return values, list(itertools.accumulate(weight for _value, weight in pairs))


def pick(rng, table):
    return pick_at(rng.random(), table)


def pick_at(fraction, table):
    """The value of `table` at `fraction` (0 to 1) of its total weight."""
    values, cumulative = table
    return values[bisect.bisect(cumulative, fraction * cumulative[-1])]


# Family names with their share of the population (per cent, 2020 census), so that 王, 李 and 张
# are as common here as in a real customer base. 曾 and 单 have two readings each.
SURNAMES = weighted([
    ("王", 7.12), ("李", 7.0), ("张", 6.74), ("刘", 5.1), ("陈", 4.61), ("杨", 3.22),
    ("黄", 2.45), ("赵", 2.29), ("吴", 2.05), ("周", 2.02), ("徐", 1.52), ("孙", 1.39),
    ("马", 1.24), ("朱", 1.18), ("胡", 1.16), ("郭", 1.08), ("何", 1.06), ("林", 1.01),
    ("高", 1.0), ("罗", 0.86), ("郑", 0.83), ("梁", 0.82), ("谢", 0.7), ("宋", 0.66),
    ("唐", 0.64), ("许", 0.61), ("韩", 0.59), ("邓", 0.57), ("冯", 0.57), ("曹", 0.56),
    ("彭", 0.55), ("曾", 0.54), ("肖", 0.51), ("田", 0.5), ("董", 0.49), ("潘", 0.47),
    ("袁", 0.47), ("蔡", 0.46), ("蒋", 0.45), ("余", 0.44), ("于", 0.44), ("杜", 0.42),
    ("叶", 0.42), ("程", 0.41), ("魏", 0.41), ("苏", 0.4), ("吕", 0.4), ("丁", 0.39),
    ("任", 0.38), ("卢", 0.36), ("姚", 0.35), ("沈", 0.35), ("钟", 0.34), ("姜", 0.34),
    ("崔", 0.33), ("谭", 0.32), ("陆", 0.32), ("范", 0.31), ("汪", 0.31), ("廖", 0.3),
    ("石", 0.3), ("金", 0.29), ("韦", 0.28), ("贾", 0.28), ("夏", 0.27), ("付", 0.27),
    ("方", 0.27), ("邹", 0.26), ("熊", 0.26), ("白", 0.25), ("孟", 0.25), ("秦", 0.25),
    ("邱", 0.24), ("侯", 0.24), ("江", 0.24), ("尹", 0.23), ("薛", 0.23), ("闫", 0.22),
    ("段", 0.22), ("雷", 0.22), ("龙", 0.21), ("黎", 0.21), ("史", 0.21), ("陶", 0.21),
    ("贺", 0.2), ("毛", 0.2), ("郝", 0.2), ("顾", 0.2), ("龚", 0.19), ("邵", 0.19),
    ("万", 0.18), ("覃", 0.18), ("武", 0.18), ("钱", 0.17), ("戴", 0.17), ("严", 0.17),
    ("莫", 0.16), ("孔", 0.16), ("向", 0.16), ("常", 0.15), ("汤", 0.15), ("单", 0.05),
    ("欧阳", 0.06), ("司马", 0.01), ("诸葛", 0.01), ("上官", 0.01),
])  # fmt: skip

# Common given names of one and two characters; the first ones are the most frequent.
MALE_GIVEN_NAMES = (
    "伟 强 磊 军 洋 勇 杰 涛 明 超 刚 平 辉 鹏 华 飞 鑫 波 斌 宇 浩 凯 健 俊 帆 旭 宁 龙 林 毅 "
    "建华 建国 建军 志强 志明 国华 国强 海涛 海波 俊杰 浩然 子轩 宇轩 博文 文博 晓东 晓明 家豪 "
    "嘉诚 子豪 天宇 明轩 一鸣 志伟 伟东 永刚 振华 立新 德明 文涛 宏伟 晨阳 思远 泽宇 皓轩 铭哲 "
    "昊天 梓豪 致远 俊熙 宇航 子墨 浩宇 雨泽 振宇 鹏飞 春生 国平 学军 金龙 小龙 建平 卫东 红军"
).split()
FEMALE_GIVEN_NAMES = (
    "芳 娜 敏 静 丽 艳 娟 霞 玲 婷 雪 琳 颖 慧 倩 燕 红 萍 蕾 洁 悦 瑶 彤 晶 莉 丹 薇 璐 "
    "秀英 桂英 秀兰 玉兰 丽娟 丽华 晓燕 晓丽 婷婷 欣怡 梓涵 诗涵 子涵 雨涵 一诺 思琪 佳怡 梦琪 "
    "雅琪 静怡 欣妍 可馨 雨桐 紫萱 佳琪 美玲 丽丽 海燕 春梅 秀珍 晓红 文静 雅婷 思雨 语嫣 若曦 "
    "雪梅 淑华 凤英 红梅 玉珍 秀云 桂兰 晓梅 金凤 慧敏 佳慧 欣然 心怡 嘉欣 诗雨 梦瑶 雨欣"
).split()

LATIN_MALE_NAMES = (
    "James John Michael David Robert William Daniel Thomas Mark Paul Peter Andrew Kevin Brian "
    "Eric Jason Ryan Alexander Lucas Oliver Ethan Henry Samuel Matthew Benjamin Leo Felix Hugo"
).split()
LATIN_FEMALE_NAMES = (
    "Mary Emily Sarah Jennifer Linda Jessica Emma Olivia Sophia Anna Laura Grace Chloe Amy "
    "Rachel Hannah Julia Natalie Claire Lisa Sophie Charlotte Alice Mia Lena Clara Nina Eva"
).split()
LATIN_FAMILY_NAMES = (
    "Smith Johnson Brown Williams Jones Miller Davis Wilson Taylor Anderson Thomas Moore Martin "
    "Lee Walker Clark Lewis Young Hall Allen King Wright Scott Green Baker Adams Nelson Carter "
    "Schmidt Schneider Fischer Weber Dubois Bernard Rossi Russo Garcia Martinez Lopez Tanaka "
    "Suzuki Sato Kim Park Choi Tan Lim Wong Ng Nguyen Patel Singh Cohen Novak Jensen Larsen"
).split()


@dataclass(frozen=True)
class City:
    name: str
    postcode: str  # the first three digits of the city's postcodes
    districts: tuple


def _cities(*cities):
    return tuple(
        City(name, postcode, tuple(districts.split())) for name, postcode, districts in cities
    )


# The largest cities of each mainland province (names as in customers.places.PROVINCES), with the
# first digits of their postcodes and some of their districts.
CITIES = {
    "北京市": _cities(("北京", "100", "东城区 西城区 朝阳区 海淀区 丰台区 通州区 昌平区")),
    "天津市": _cities(("天津", "300", "和平区 河西区 南开区 河东区 滨海新区 西青区")),
    "上海市": _cities(
        ("上海", "200", "黄浦区 徐汇区 长宁区 静安区 普陀区 浦东新区 闵行区 杨浦区"),
    ),
    "重庆市": _cities(("重庆", "400", "渝中区 江北区 南岸区 沙坪坝区 九龙坡区 渝北区")),
    "河北省": _cities(
        ("石家庄", "050", "长安区 桥西区 新华区 裕华区"),
        ("唐山", "063", "路南区 路北区 丰润区"),
        ("保定", "071", "竞秀区 莲池区"),
    ),
    "山西省": _cities(("太原", "030", "小店区 迎泽区 杏花岭区"), ("大同", "037", "平城区 云冈区")),
    "辽宁省": _cities(
        ("沈阳", "110", "和平区 沈河区 皇姑区 铁西区"),
        ("大连", "116", "中山区 西岗区 沙河口区 甘井子区"),
    ),
    "吉林省": _cities(("长春", "130", "朝阳区 南关区 宽城区"), ("吉林", "132", "船营区 昌邑区")),
    "黑龙江省": _cities(
        ("哈尔滨", "150", "道里区 南岗区 香坊区"),
        ("大庆", "163", "萨尔图区 让胡路区"),
    ),
    "江苏省": _cities(
        ("南京", "210", "玄武区 秦淮区 鼓楼区 建邺区 江宁区"),
        ("苏州", "215", "姑苏区 吴中区 相城区 虎丘区"),
        ("无锡", "214", "梁溪区 滨湖区 新吴区"),
        ("常州", "213", "天宁区 钟楼区 武进区"),
    ),
    "浙江省": _cities(
        ("杭州", "310", "上城区 拱墅区 西湖区 滨江区 余杭区 萧山区"),
        ("宁波", "315", "海曙区 江北区 鄞州区"),
        ("温州", "325", "鹿城区 龙湾区 瓯海区"),
    ),
    "安徽省": _cities(
        ("合肥", "230", "庐阳区 蜀山区 包河区 瑶海区"),
        ("芜湖", "241", "镜湖区 鸠江区"),
    ),
    "福建省": _cities(
        ("福州", "350", "鼓楼区 台江区 仓山区"),
        ("厦门", "361", "思明区 湖里区 集美区"),
        ("泉州", "362", "鲤城区 丰泽区"),
    ),
    "江西省": _cities(
        ("南昌", "330", "东湖区 西湖区 青山湖区 红谷滩区"),
        ("赣州", "341", "章贡区 南康区"),
    ),
    "山东省": _cities(
        ("济南", "250", "历下区 市中区 槐荫区 历城区"),
        ("青岛", "266", "市南区 市北区 崂山区 黄岛区"),
        ("烟台", "264", "芝罘区 莱山区"),
    ),
    "河南省": _cities(
        ("郑州", "450", "中原区 二七区 金水区 管城回族区"),
        ("洛阳", "471", "西工区 老城区 涧西区"),
    ),
    "湖北省": _cities(
        ("武汉", "430", "江岸区 江汉区 武昌区 洪山区 汉阳区"),
        ("宜昌", "443", "西陵区 伍家岗区"),
    ),
    "湖南省": _cities(
        ("长沙", "410", "芙蓉区 天心区 岳麓区 开福区 雨花区"),
        ("株洲", "412", "天元区 芦淞区"),
    ),
    "广东省": _cities(
        ("广州", "510", "越秀区 天河区 海珠区 白云区 番禺区"),
        ("深圳", "518", "福田区 罗湖区 南山区 宝安区 龙岗区"),
        ("东莞", "523", "南城街道 东城街道 莞城街道"),
        ("佛山", "528", "禅城区 南海区 顺德区"),
        ("珠海", "519", "香洲区 斗门区"),
    ),
    "海南省": _cities(("海口", "570", "秀英区 龙华区 美兰区"), ("三亚", "572", "吉阳区 天涯区")),
    "四川省": _cities(
        ("成都", "610", "锦江区 青羊区 金牛区 武侯区 成华区"),
        ("绵阳", "621", "涪城区 游仙区"),
    ),
    "贵州省": _cities(
        ("贵阳", "550", "南明区 云岩区 观山湖区"), ("遵义", "563", "红花岗区 汇川区")
    ),
    "云南省": _cities(
        ("昆明", "650", "五华区 盘龙区 官渡区 西山区"), ("丽江", "674", "古城区 玉龙县")
    ),
    "陕西省": _cities(
        ("西安", "710", "新城区 碑林区 莲湖区 雁塔区 未央区"),
        ("宝鸡", "721", "渭滨区 金台区"),
    ),
    "甘肃省": _cities(("兰州", "730", "城关区 七里河区 安宁区")),
    "青海省": _cities(("西宁", "810", "城东区 城中区 城西区")),
    "内蒙古自治区": _cities(
        ("呼和浩特", "010", "新城区 回民区 赛罕区"),
        ("包头", "014", "昆都仑区 青山区"),
    ),
    "广西壮族自治区": _cities(
        ("南宁", "530", "青秀区 兴宁区 西乡塘区"),
        ("桂林", "541", "秀峰区 象山区 七星区"),
    ),
    "西藏自治区": _cities(("拉萨", "850", "城关区 堆龙德庆区")),
    "宁夏回族自治区": _cities(("银川", "750", "兴庆区 金凤区 西夏区")),
    "新疆维吾尔自治区": _cities(("乌鲁木齐", "830", "天山区 沙依巴克区 新市区")),
}
# Where customers live, roughly by population and economic activity.
PROVINCES = weighted([
    ("广东省", 12), ("江苏省", 9), ("浙江省", 8), ("山东省", 7), ("上海市", 6), ("北京市", 5),
    ("四川省", 5), ("河南省", 5), ("湖北省", 4), ("福建省", 4), ("湖南省", 4), ("河北省", 4),
    ("安徽省", 3), ("陕西省", 2.5), ("重庆市", 2.5), ("辽宁省", 2.5), ("天津市", 2),
    ("江西省", 2), ("广西壮族自治区", 2), ("云南省", 2), ("山西省", 1.5), ("黑龙江省", 1.5),
    ("贵州省", 1.5), ("吉林省", 1), ("内蒙古自治区", 1), ("新疆维吾尔自治区", 1), ("甘肃省", 1),
    ("海南省", 0.8), ("宁夏回族自治区", 0.4), ("青海省", 0.3), ("西藏自治区", 0.2),
])  # fmt: skip

# Which sales team looks after customers in which provinces; the rest are shared out.
EAST_CHINA = {"上海市", "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省"}
SOUTH_CHINA = {"广东省", "广西壮族自治区", "海南省"}

ROADS = (
    "人民路 中山路 解放路 建设路 和平路 新华路 胜利路 长江路 黄河路 文化路 朝阳路 青年路 "
    "工业大道 滨江大道 科技路 学府路 花园路 东风路 光明路 幸福路 迎宾大道 世纪大道 振兴路 "
    "友谊路 北京路 延安路 淮海路 南京路 长安街 金融街"
).split()
ESTATES = "阳光花园 金色家园 翠湖苑 锦绣华庭 万科城 碧桂园 绿地新城 幸福里 御景湾 书香苑".split()
OFFICE_BUILDINGS = "国际贸易中心 环球金融中心 科技园大厦 财富广场 世纪商务中心 创业大厦".split()

COMPANY_BRANDS = (
    "恒达 华信 永盛 鑫源 宏图 金桥 天成 中联 瑞丰 博远 新世纪 汇通 嘉禾 盛世 东方 华泰 "
    "利民 长城 远航 星辰 明德 正泰 安捷 凯瑞 海纳 百川 启明 卓越 同创 创新 富邦 联合"
).split()
COMPANY_TRADES = (
    "科技 贸易 电子 实业 建设 餐饮管理 文化传媒 物流 医药 教育咨询 信息技术 生物科技 食品 "
    "服饰 家居 汽车服务 网络科技 环保科技 投资管理 装饰工程"
).split()
COMPANY_FORMS = weighted(
    [("有限公司", 70), ("有限责任公司", 10), ("股份有限公司", 15), ("集团有限公司", 5)]
)
LATIN_COMPANY_BRANDS = (
    "Pacific Orient Summit Evergreen Silverline Northwind Bluewave Golden Bridge Apex Harbor "
    "Meridian Lotus Crescent Redwood Horizon"
).split()
LATIN_COMPANY_TRADES = (
    "Trading Technologies Logistics Consulting Foods Healthcare Electronics Design Capital"
).split()
LATIN_COMPANY_FORMS = ["Ltd.", "Co., Ltd.", "Inc.", "GmbH", "Pte. Ltd.", "Group"]

JOB_TITLES = (
    "总经理 副总经理 销售经理 采购经理 采购专员 财务总监 会计 工程师 高级工程师 产品经理 "
    "人力资源经理 行政主管 市场专员 市场总监 设计师 运营总监 技术总监 项目经理 客服主管 店长"
).split()
PERSONAL_TITLES = "教师 医生 护士 律师 公务员 自由职业 个体经营 学生 退休".split()
LATIN_JOB_TITLES = [
    "CEO", "Managing Director", "Sales Manager", "Purchasing Manager", "Engineer",
    "Product Manager", "Marketing Director", "Consultant", "Operations Manager",
]  # fmt: skip

EMAIL_DOMAINS = weighted(
    [("example.com", 50), ("example.net", 25), ("example.org", 15), ("mail.example.com", 10)]
)

SOURCES = weighted([
    (Source.WEB_FORM, 20), (Source.STORE, 18), (Source.SOCIAL, 14), (Source.IMPORT, 12),
    (Source.REFERRAL, 10), (Source.EXPO, 8), (Source.API, 7), (Source.SURVEY, 6),
    (Source.OTHER, 5),
])  # fmt: skip
STATUSES = weighted([
    (Status.ACTIVE, 50), (Status.LEAD, 15), (Status.PROSPECT, 15), (Status.INACTIVE, 12),
    (Status.CHURNED, 8),
])  # fmt: skip
NEW_STATUSES = weighted([(Status.LEAD, 60), (Status.PROSPECT, 30), (Status.ACTIVE, 10)])
GENDERS = weighted([(Gender.FEMALE, 47), (Gender.MALE, 46), (Gender.UNKNOWN, 6), (Gender.OTHER, 1)])

TAGS = [
    "VIP",
    "新客",
    "老客户",
    "高潜力",
    "企业客户",
    "会员",
    "已流失风险",
    "价格敏感",
    "复购",
    "线上活跃",
]

NOTES = [
    "偏好微信联系。",
    "工作日白天不方便接电话，请下午六点后联系。",
    "对价格较敏感，关注促销活动。",
    "需要开具增值税专用发票。",
    "老客户介绍，注意维护关系。",
    "对售后服务有较高要求。",
    "Prefers email in English.",
]

# (product, unit price in fen, usual quantity range); companies buy larger quantities.
PRODUCTS = [
    ("无线蓝牙耳机", 39900, 1, 2), ("智能手表", 129900, 1, 1), ("空气净化器", 199900, 1, 1),
    ("咖啡豆 500g", 8800, 1, 4), ("人体工学办公椅", 159900, 1, 2), ("保温杯", 12900, 1, 3),
    ("机械键盘", 49900, 1, 1), ("显示器 27 英寸", 189900, 1, 2), ("扫地机器人", 249900, 1, 1),
    ("电动牙刷", 29900, 1, 2), ("有机绿茶礼盒", 26800, 1, 3), ("羊毛围巾", 39800, 1, 2),
    ("跑步鞋", 69900, 1, 1), ("行李箱 24 英寸", 59900, 1, 1), ("儿童绘本套装", 19800, 1, 2),
    ("护肤套装", 45800, 1, 2), ("智能音箱", 29900, 1, 2), ("电饭煲", 69900, 1, 1),
    ("打印纸 A4 (箱)", 16500, 1, 5), ("投影仪", 399900, 1, 1), ("会员年卡", 29900, 1, 1),
    ("办公软件订阅 (年)", 89900, 1, 3), ("移动电源", 14900, 1, 3), ("坚果礼盒", 16800, 1, 4),
]  # fmt: skip

# Where orders come from: (channel, source system, order number prefix), weight.
ORDER_CHANNELS = weighted([
    ((Channel.WEBSITE, "shop", "WEB"), 22), ((Channel.APP, "shop", "APP"), 18),
    ((Channel.WECHAT, "wechat_mall", "WX"), 20), ((Channel.MARKETPLACE, "tmall", "TM"), 15),
    ((Channel.STORE, "pos", "POS"), 18), ((Channel.PHONE, "erp", "SO"), 5),
    ((Channel.EMAIL, "erp", "SO"), 2),
])  # fmt: skip

# (kind, channel, summary); "{product}" is replaced by a product name.
INTERACTIONS = weighted([
    ((InteractionKind.CALL, Channel.PHONE, "电话回访，了解{product}的使用情况。"), 20),
    ((InteractionKind.CALL, Channel.PHONE, "电话沟通续费事宜，客户表示考虑中。"), 8),
    ((InteractionKind.VISIT, Channel.STORE, "到店体验{product}，留下联系方式。"), 12),
    ((InteractionKind.EMAIL, Channel.EMAIL, "发送新品介绍和优惠信息。"), 12),
    ((InteractionKind.MEETING, Channel.OTHER, "商务洽谈，讨论年度采购计划。"), 6),
    ((InteractionKind.INQUIRY, Channel.WECHAT, "微信咨询{product}的价格和交期。"), 16),
    ((InteractionKind.INQUIRY, Channel.WEBSITE, "官网在线客服咨询会员权益。"), 8),
    ((InteractionKind.COMPLAINT, Channel.PHONE, "投诉物流延迟，已安排补偿优惠券。"), 4),
    ((InteractionKind.COMPLAINT, Channel.WECHAT, "反馈{product}质量问题，已安排退换。"), 3),
    ((InteractionKind.SOCIAL, Channel.SOCIAL, "在社交媒体评论区咨询活动详情。"), 6),
])  # fmt: skip
FIRST_CONTACT = {
    Source.WEB_FORM: (InteractionKind.FORM, Channel.WEBSITE, "提交官网留言表单，希望了解产品。"),
    Source.SURVEY: (InteractionKind.FORM, Channel.WEBSITE, "填写满意度调查问卷并留下联系方式。"),
    Source.STORE: (InteractionKind.VISIT, Channel.STORE, "首次到店，登记为会员。"),
    Source.EXPO: (InteractionKind.MEETING, Channel.EXPO, "展会现场交流，交换名片。"),
    Source.SOCIAL: (InteractionKind.SOCIAL, Channel.SOCIAL, "通过公众号留言首次联系。"),
    Source.REFERRAL: (InteractionKind.CALL, Channel.PHONE, "老客户推荐，电话首次沟通。"),
}

CONSENT_WORDING = {
    ConsentPurpose.DATA_PROCESSING: "我同意贵公司按照隐私政策处理我的个人信息。",
    ConsentPurpose.MARKETING_EMAIL: "我愿意通过电子邮件接收产品资讯和优惠活动。",
    ConsentPurpose.SMS: "我愿意通过短信接收订单通知和优惠活动。",
    ConsentPurpose.PHONE: "我同意客服人员致电介绍产品和服务。",
}

# Valid Chinese mobile prefixes (phonenumbers accepts every eight digits after them).
MOBILE_PREFIXES = weighted([
    ("138", 8), ("139", 8), ("137", 6), ("136", 6), ("135", 6), ("134", 3), ("133", 4),
    ("132", 3), ("131", 3), ("130", 3), ("150", 4), ("151", 4), ("152", 3), ("153", 2),
    ("155", 2), ("156", 3), ("157", 2), ("158", 4), ("159", 4), ("166", 2), ("173", 2),
    ("177", 2), ("180", 2), ("181", 2), ("182", 3), ("183", 2), ("185", 3), ("186", 4),
    ("187", 3), ("188", 3), ("189", 3), ("191", 1), ("198", 2), ("199", 2),
])  # fmt: skip

CUSTOMER_COLUMNS = (
    "id", "display_name", "family_name", "given_name", "gender", "birthday", "email", "phone",
    "company", "job_title", "country", "province", "city", "district", "street", "postcode",
    "source", "status", "tags", "owner_id", "team_id", "notes", "attributes", "created_at",
    "updated_at", "created_by_id", "updated_by_id", "version", "name_pinyin", "search_text",
    "search_keys", "email_index", "phone_index", "phone_last4_index", "birth_year",
)  # fmt: skip
ORDER_COLUMNS = (
    "id", "customer_id", "source_system", "external_id", "ordered_at", "amount", "currency",
    "channel", "lines", "created_at",
)  # fmt: skip
INTERACTION_COLUMNS = (
    "id", "customer_id", "kind", "channel", "occurred_at", "summary", "details",
    "created_by_id", "created_at",
)  # fmt: skip
CONSENT_COLUMNS = (
    "id", "customer_id", "purpose", "granted", "recorded_at", "source", "wording",
    "wording_version", "recorded_by_id",
)  # fmt: skip


@dataclass(frozen=True)
class Staff:
    """The database ids of the demo users and teams that customers are assigned to."""

    east_owners: tuple  # (user id, team id) pairs of the East China team
    south_owners: tuple
    recorders: tuple  # user ids who record interactions for customers without an owner


@dataclass(frozen=True)
class Profile:
    """What a customer's orders, interactions and consents depend on."""

    index: int
    id: str
    created: int
    status: str
    source: str
    owner_id: int | None
    has_company: bool
    has_email: bool
    foreign: bool


# Rows carry times as integer microseconds since the Unix epoch; building a datetime for each of
# millions of rows would cost more than generating the rest of the row.
def micros(when):
    return (when - EPOCH) // datetime.timedelta(microseconds=1)


def moment(value):
    return EPOCH + datetime.timedelta(microseconds=value)


def pg_array(values):
    """A PostgreSQL array literal of strings; psycopg's own list adapter is slower in bulk."""
    joined = "".join(values)
    if "\\" in joined or '"' in joined:
        values = [v.replace("\\", "\\\\").replace('"', '\\"') for v in values]
    items = '","'.join(values)
    return f'{{"{items}"}}' if values else "{}"


# Random helpers several times faster than Random.randint and Random.choice, which matters at
# tens of millions of calls.
def below(rng, n):
    return int(rng.random() * n)


def between(rng, low, high):
    return low + int(rng.random() * (high - low + 1))


def choose(rng, values):
    return values[int(rng.random() * len(values))]


def demo_id(at, rng):
    """A UUIDv7 (hex) for time `at`, reproducible from the random stream."""
    return f"{uuid7_int(at // 1000, rng.getrandbits(80)):032x}"


def customer_rng(index):
    return random.Random(index * 2)


def activity_rng(index):
    return random.Random(index * 2 + 1)


def customer_identity(index, anchor):
    """(id, created time) of customer `index`: the first draws of its random stream."""
    return _identity(customer_rng(index), anchor)


def anchor_of(index, customer_id, created):
    """The anchor that customer `index` was generated from, or None if it is not that customer."""
    rng = customer_rng(index)
    anchor = created + _age(rng)
    return anchor if demo_id(created, rng) == customer_id else None


def _age(rng):
    # More customers joined recently than three years ago, as in a growing business.
    return int(HISTORY * (1 - rng.random() ** 0.7))


def _identity(rng, anchor):
    created = anchor - _age(rng)
    return demo_id(created, rng), created


def phone_number(index):
    """A valid, unique Chinese mobile number in E.164 form for customer `index`."""
    # index * 7919993 is a permutation of 0..10**8-1 (the factor is coprime to 10), so every
    # index below a hundred million gets different last eight digits; the prefix is chosen by a
    # multiplicative hash of the index, so the number does not depend on any other draw.
    prefix = pick_at(((index * 0x9E3779B97F4A7C15) % 2**64) / 2**64, MOBILE_PREFIXES)
    return f"+86{prefix}{(index * 7_919_993 + 12_345_678) % 10**8:08d}"


class CustomerFactory:
    """Builds customer rows, remembering the search terms of names and companies already seen.

    Pinyin is by far the slowest part of a customer, and a few tens of thousands of distinct names
    cover a million customers, so each name is converted once.
    """

    def __init__(self, *, anchor, staff):
        self.anchor = anchor
        self.staff = staff
        self.today = moment(anchor).date().toordinal()
        self._names = {}
        self._companies = {}
        self._sealers = {field.name: field.seal for field in encrypted_fields(Customer)}

    def build(self, index):
        """(row for CUSTOMER_COLUMNS, Profile) of customer `index`."""
        rng = customer_rng(index)
        pk, created = _identity(rng, self.anchor)
        age = self.anchor - created
        gender = pick(rng, GENDERS)
        foreign = rng.random() < 0.08
        family, given = _latin_name(rng, gender) if foreign else _chinese_name(rng, gender)
        display_name = Customer.name_from_parts(family, given)
        name_terms = self._name_terms(display_name, family, given)
        province, city, district, street, postcode = _address(rng)
        company, job_title = _work(rng, city, foreign)
        email = _email(rng, index, name_terms, foreign) if rng.random() < 0.8 else ""
        status = pick(rng, NEW_STATUSES if age < 30 * DAY else STATUSES)
        source = pick(rng, SOURCES)
        owner_id, team_id = (
            choose(rng, self.staff_for(province)) if rng.random() < 0.92 else (None, None)
        )
        updated = created if rng.random() < 0.4 else created + below(rng, age)
        birthday = None
        if rng.random() < 0.75:
            birthday = datetime.date.fromordinal(self.today - between(rng, 18 * 365, 70 * 365))
        columns = search.combine_search_fields(name_terms, self._company_terms(company))
        phone = phone_number(index)
        # The associated data names the row by its UUID in the usual hyphenated form.
        row_id = f"{pk[:8]}-{pk[8:12]}-{pk[12:16]}-{pk[16:20]}-{pk[20:]}"
        seal = self._sealers
        row = (
            pk, display_name, family, given, gender, seal["birthday"](birthday, row_id),
            seal["email"](email, row_id), seal["phone"](phone, row_id), company, job_title, "CN",
            province, city, district, seal["street"](street, row_id), postcode, source, status,
            pg_array(_tags(rng, age, status, company)), owner_id, team_id,
            choose(rng, NOTES) if rng.random() < 0.1 else "", "{}", created, updated, owner_id,
            owner_id, 1 if updated == created else between(rng, 2, 6), columns["name_pinyin"],
            columns["search_text"], pg_array(columns["search_keys"]), search.email_index(email),
            *search.phone_indexes(phone), birthday.year if birthday else None,
        )  # fmt: skip
        profile = Profile(
            index=index, id=pk, created=created, status=status, source=source, owner_id=owner_id,
            has_company=bool(company), has_email=bool(email), foreign=foreign,
        )  # fmt: skip
        return row, profile

    def staff_for(self, province):
        """(owner id, team id) pairs that may look after a customer in `province`."""
        if province in EAST_CHINA:
            return self.staff.east_owners
        if province in SOUTH_CHINA:
            return self.staff.south_owners
        return self.staff.east_owners + self.staff.south_owners

    def _name_terms(self, display_name, family, given):
        key = (display_name, family, given)
        if key not in self._names:
            self._names[key] = search.name_terms(display_name, family, given)
        return self._names[key]

    def _company_terms(self, company):
        if company not in self._companies:
            self._companies[company] = search.company_terms(company)
        return self._companies[company]


def _chinese_name(rng, gender):
    if gender in (Gender.UNKNOWN, Gender.OTHER):
        gender = Gender.FEMALE if rng.random() < 0.5 else Gender.MALE
    names = FEMALE_GIVEN_NAMES if gender == Gender.FEMALE else MALE_GIVEN_NAMES
    # Earlier names in the lists are more common.
    return pick(rng, SURNAMES), names[int(len(names) * rng.random() ** 1.6)]


def _latin_name(rng, gender):
    names = LATIN_FEMALE_NAMES if gender == Gender.FEMALE else LATIN_MALE_NAMES
    return choose(rng, LATIN_FAMILY_NAMES), choose(rng, names)


def _address(rng):
    """(province, city, district, street, postcode); a tenth give only their city."""
    province = pick(rng, PROVINCES)
    cities = CITIES[province]
    city = cities[int(len(cities) * rng.random() ** 1.5)]
    if rng.random() < 0.1:
        return province, city.name, "", "", ""
    district = below(rng, len(city.districts))
    street = f"{choose(rng, ROADS)}{between(rng, 1, 999)}号"
    place = rng.random()
    if place < 0.6:
        street += (
            f"{choose(rng, ESTATES)}{between(rng, 1, 30)}栋{between(rng, 1, 4)}单元"
            f"{between(rng, 1, 32)}{between(rng, 1, 4):02d}室"
        )
    elif place < 0.75:
        street += f"{choose(rng, OFFICE_BUILDINGS)}{between(rng, 2, 40)}楼"
    postcode = f"{city.postcode}{district % 10}{below(rng, 100):02d}"
    return province, city.name, city.districts[district], street, postcode


def _work(rng, city, foreign):
    """(company, job title); just under half the customers are private buyers."""
    if rng.random() < 0.45:
        if foreign or rng.random() < 0.4:
            return "", ""
        return "", choose(rng, PERSONAL_TITLES)
    if foreign or rng.random() < 0.08:
        company = (
            f"{choose(rng, LATIN_COMPANY_BRANDS)} {choose(rng, LATIN_COMPANY_TRADES)} "
            f"{choose(rng, LATIN_COMPANY_FORMS)}"
        )
        titles = LATIN_JOB_TITLES if foreign else JOB_TITLES
    else:
        company = (
            f"{city}{choose(rng, COMPANY_BRANDS)}{choose(rng, COMPANY_TRADES)}"
            f"{pick(rng, COMPANY_FORMS)}"
        )
        titles = JOB_TITLES
    return company, choose(rng, titles) if rng.random() < 0.85 else ""


def _email(rng, index, name_terms, foreign):
    """A unique address: letters and dots from the name, then the index, so no two collide."""
    _name, _compact_name, _parts, compact, initials = name_terms["text"]
    words = name_terms["pinyin"].split()
    style = rng.random()
    if foreign:
        local = ".".join(words) if style < 0.5 else words[0][0] + words[-1]
    elif style < 0.5:
        local = compact
    elif style < 0.8:
        local = ".".join(words)
    else:
        local = initials
    return f"{local}{index}@{pick(rng, EMAIL_DOMAINS)}"


def _tags(rng, age, status, company):
    chances = (
        0.08,  # VIP
        0.6 if age < 90 * DAY else 0,  # 新客
        0.4 if age > 2 * 365 * DAY else 0,  # 老客户
        0.1,  # 高潜力
        0.5 if company else 0,  # 企业客户
        0.25,  # 会员
        0.4 if status in (Status.INACTIVE, Status.CHURNED) else 0,  # 已流失风险
        0.1,  # 价格敏感
        0.3 if status == Status.ACTIVE else 0,  # 复购
        0.15,  # 线上活跃
    )
    return [tag for tag, chance in zip(TAGS, chances, strict=True) if rng.random() < chance]


# Orders per customer by status: (fewest, most). Half the customers are active with about eight
# orders, so the whole base averages about five.
ORDER_COUNTS = {
    Status.LEAD: (0, 0),
    Status.PROSPECT: (0, 1),
    Status.ACTIVE: (2, 15),
    Status.INACTIVE: (1, 9),
    Status.CHURNED: (1, 7),
}


def activity(profile, anchor, staff):
    """(orders, interactions, consents) of one customer, as rows for the *_COLUMNS."""
    rng = activity_rng(profile.index)
    # Customers who stopped buying did so some time ago.
    active_until = anchor
    if profile.status in (Status.INACTIVE, Status.CHURNED):
        active_until = profile.created + int((anchor - profile.created) * 0.6)
    low, high = ORDER_COUNTS[profile.status]
    orders = [
        _order(rng, profile, number, between(rng, profile.created, active_until))
        for number in range(between(rng, low, high))
    ]
    return orders, _interactions(rng, profile, anchor, staff), _consents(rng, profile, anchor)


def _order(rng, profile, number, ordered):
    """One order; its amount is exactly the total of its lines."""
    channel, system, prefix = pick(rng, ORDER_CHANNELS)
    lines, cents = [], 0
    for _line in range(1 if rng.random() < 0.6 else between(rng, 2, 4)):
        product = below(rng, len(PRODUCTS))
        _name, _price, low, high = PRODUCTS[product]
        quantity = between(rng, low, high)
        if profile.has_company and rng.random() < 0.2:
            quantity *= choose(rng, (5, 10, 20))  # a purchase for the whole office
        line, line_cents = order_line(product, quantity)
        lines.append(line)
        cents += line_cents
    currency = "CNY"
    if profile.foreign and rng.random() < 0.3:
        currency = choose(rng, ("USD", "EUR", "HKD"))
    return (
        demo_id(ordered, rng), profile.id, system,
        f"{prefix}{profile.index:08d}{number:02d}",
        ordered, f"{cents // 100}.{cents % 100:02d}", currency, channel,
        f"[{', '.join(lines)}]", ordered + between(rng, 1, 600) * SECOND,
    )  # fmt: skip


@functools.cache
def order_line(product, quantity):
    """(JSON of the line, its total in fen) for `quantity` of PRODUCTS[product]."""
    name, price, _low, _high = PRODUCTS[product]
    line = {"product": name, "quantity": float(quantity), "unit_price": f"{price / 100:.2f}"}
    return json.dumps(line, ensure_ascii=False), quantity * price


def _interactions(rng, profile, anchor, staff):
    rows = []
    if first := FIRST_CONTACT.get(profile.source):
        at = profile.created + between(rng, 0, 3600) * SECOND
        rows.append(_interaction(rng, profile, staff, first, at))
    for _number in range(between(rng, 0, 3)):
        kind = pick(rng, INTERACTIONS)
        rows.append(_interaction(rng, profile, staff, kind, between(rng, profile.created, anchor)))
    return rows


def _interaction(rng, profile, staff, kind, occurred):
    kind, channel, summary = kind
    by = profile.owner_id or choose(rng, staff.recorders)
    if kind in (InteractionKind.FORM, InteractionKind.SOCIAL):
        by = None  # recorded by the website or an integration, not by a person
    details = "{}"
    if kind == InteractionKind.CALL:
        details = f'{{"duration_minutes": {between(rng, 2, 40)}}}'
    summary = summary.format(product=choose(rng, PRODUCTS)[0])
    return (
        demo_id(occurred, rng),
        profile.id,
        kind,
        channel,
        occurred,
        summary,
        details,
        by,
        occurred,
    )


def _consents(rng, profile, anchor):
    """Consent to data processing at sign-up, some to contact; a few withdrawn later."""
    if rng.random() < 0.55:
        return []
    rows = []
    for purpose in CONSENT_PURPOSES:
        if purpose == ConsentPurpose.MARKETING_EMAIL and not profile.has_email:
            continue
        if purpose != ConsentPurpose.DATA_PROCESSING and rng.random() < 0.5:
            continue
        granted = profile.created + between(rng, 0, 600) * SECOND
        rows.append(_consent(rng, profile, purpose, True, granted))
        if purpose != ConsentPurpose.DATA_PROCESSING and rng.random() < 0.15:
            rows.append(_consent(rng, profile, purpose, False, between(rng, granted, anchor)))
    return rows


CONSENT_PURPOSES = (
    ConsentPurpose.DATA_PROCESSING,
    ConsentPurpose.SMS,
    ConsentPurpose.PHONE,
    ConsentPurpose.MARKETING_EMAIL,
)


def _consent(rng, profile, purpose, granted, recorded):
    wording = CONSENT_WORDING[purpose] if granted else ""
    version = f"{moment(recorded).year}-01" if granted else ""
    return (
        demo_id(recorded, rng), profile.id, purpose, granted, recorded, profile.source, wording,
        version, profile.owner_id,
    )  # fmt: skip
