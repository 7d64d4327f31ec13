"""The demo's published forms: a product enquiry and a satisfaction survey.

`ensure_demo_forms` creates them once; running it again changes nothing, so edits made to them in
the form builder are kept.
"""

from django.db import transaction
from django.utils import timezone

from accounts.models import Team
from intake.models import Form, FormField

Type = FormField.Type

INTERESTS = [
    {"value": "crm", "label": "客户管理", "label_en": "Customer management"},
    {"value": "analytics", "label": "数据分析", "label_en": "Analytics"},
    {"value": "forms", "label": "在线表单", "label_en": "Online forms"},
    {"value": "other", "label": "其他", "label_en": "Other"},
]
HEARD_FROM = [
    {"value": "search", "label": "搜索引擎", "label_en": "Search engine"},
    {"value": "friend", "label": "朋友推荐", "label_en": "A friend"},
    {"value": "store", "label": "门店", "label_en": "In a store"},
    {"value": "social", "label": "社交媒体", "label_en": "Social media"},
]
VALUED = [
    {"value": "quality", "label": "产品质量", "label_en": "Product quality"},
    {"value": "price", "label": "价格", "label_en": "Price"},
    {"value": "service", "label": "服务", "label_en": "Service"},
    {"value": "delivery", "label": "配送速度", "label_en": "Delivery speed"},
]

ENQUIRY = {
    "slug": "product-enquiry",
    "kind": Form.Kind.FORM,
    "title": "产品咨询",
    "title_en": "Product enquiry",
    "description": "留下您的联系方式，我们的顾问将在一个工作日内与您联系。",
    "description_en": "Leave your details and an adviser will contact you within one working day.",
    "thank_you": "感谢您的咨询！我们会尽快与您联系。",
    "thank_you_en": "Thank you for your enquiry! We will be in touch soon.",
    "source": "web_form",
    "embeddable": True,
}
ENQUIRY_FIELDS = [
    # key, type, label, English label, required, target, choices
    ("name", Type.TEXT, "姓名", "Name", True, "customer:display_name", []),
    ("phone", Type.PHONE, "手机号", "Mobile phone", True, "customer:phone", []),
    ("email", Type.EMAIL, "邮箱", "Email", False, "customer:email", []),
    ("company", Type.TEXT, "公司", "Company", False, "customer:company", []),
    (
        "interest",
        Type.CHOICE,
        "您感兴趣的产品",
        "Which product interests you?",
        True,
        "",
        INTERESTS,
    ),
    (
        "marketing",
        Type.CONSENT,
        "我同意通过电子邮件接收产品和活动信息，可随时退订。",
        "I agree to receive news about products and events by email and may unsubscribe at any "
        "time.",
        False,
        "consent:marketing_email",
        [],
    ),
]

SURVEY = {
    "slug": "satisfaction",
    "kind": Form.Kind.SURVEY,
    "title": "满意度调查",
    "title_en": "Satisfaction survey",
    "description": "只需一分钟，帮助我们做得更好。",
    "description_en": "One minute of your time helps us do better.",
    "thank_you": "感谢您的反馈！",
    "thank_you_en": "Thank you for your feedback!",
    "source": "survey",
}
SURVEY_FIELDS = [
    ("overall", Type.RATING, "总体满意度", "Overall satisfaction", True, "", []),
    (
        "recommend",
        Type.NPS,
        "您有多大可能向朋友推荐我们？",
        "How likely are you to recommend us to a friend?",
        True,
        "",
        [],
    ),
    (
        "heard_from",
        Type.CHOICE,
        "您是如何知道我们的？",
        "How did you hear about us?",
        False,
        "",
        HEARD_FROM,
    ),
    ("valued", Type.MULTI_CHOICE, "您最看重什么？", "What do you value most?", False, "", VALUED),
    (
        "comments",
        Type.LONG_TEXT,
        "其他意见或建议",
        "Anything else you would like to tell us?",
        False,
        "",
        [],
    ),
]


def ensure_demo_forms(owner):
    """The demo enquiry form and survey, published and owned by `owner`; created only once."""
    return [
        _ensure(ENQUIRY, ENQUIRY_FIELDS, owner),
        _ensure(SURVEY, SURVEY_FIELDS, owner),
    ]


@transaction.atomic
def _ensure(values, fields, owner):
    values = {**values}
    slug = values.pop("slug")
    team = Team.objects.filter(group__user=owner).order_by("pk").first()
    form, created = Form.objects.get_or_create(
        slug=slug,
        defaults={
            **values,
            "owner": owner,
            "team": team,
            "created_by": owner,
            "published_at": timezone.now(),
        },
    )
    if created:
        FormField.objects.bulk_create(
            FormField(
                form=form,
                key=key,
                type=type_,
                label=label,
                label_en=label_en,
                required=required,
                target=target,
                choices=choices,
                position=position,
            )
            for position, (key, type_, label, label_en, required, target, choices) in enumerate(
                fields, start=1
            )
        )
    return form
