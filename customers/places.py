"""Countries and Chinese provinces offered in address fields and filters."""

from django.utils.translation import gettext_lazy as _

COUNTRIES = [
    ("CN", _("China")),
    ("HK", _("Hong Kong SAR")),
    ("MO", _("Macao SAR")),
    ("TW", _("Taiwan")),
    ("SG", _("Singapore")),
    ("MY", _("Malaysia")),
    ("TH", _("Thailand")),
    ("VN", _("Vietnam")),
    ("ID", _("Indonesia")),
    ("PH", _("Philippines")),
    ("JP", _("Japan")),
    ("KR", _("South Korea")),
    ("IN", _("India")),
    ("AE", _("United Arab Emirates")),
    ("SA", _("Saudi Arabia")),
    ("AU", _("Australia")),
    ("NZ", _("New Zealand")),
    ("US", _("United States")),
    ("CA", _("Canada")),
    ("MX", _("Mexico")),
    ("BR", _("Brazil")),
    ("GB", _("United Kingdom")),
    ("DE", _("Germany")),
    ("FR", _("France")),
    ("IT", _("Italy")),
    ("ES", _("Spain")),
    ("NL", _("Netherlands")),
    ("CH", _("Switzerland")),
    ("SE", _("Sweden")),
    ("RU", _("Russia")),
    ("ZA", _("South Africa")),
]

# Province-level divisions of China, as customers and staff write them.
PROVINCES = [
    "北京市", "天津市", "上海市", "重庆市", "河北省", "山西省", "辽宁省", "吉林省", "黑龙江省",
    "江苏省", "浙江省", "安徽省", "福建省", "江西省", "山东省", "河南省", "湖北省", "湖南省",
    "广东省", "海南省", "四川省", "贵州省", "云南省", "陕西省", "甘肃省", "青海省", "台湾省",
    "内蒙古自治区", "广西壮族自治区", "西藏自治区", "宁夏回族自治区", "新疆维吾尔自治区",
    "香港特别行政区", "澳门特别行政区",
]  # fmt: skip

CURRENCIES = ["CNY", "HKD", "USD", "EUR", "JPY", "GBP", "SGD", "KRW", "AUD", "CAD"]


def country_choices():
    return [("", "---------"), *COUNTRIES]


def country_name(code):
    return dict(COUNTRIES).get(code, code)
