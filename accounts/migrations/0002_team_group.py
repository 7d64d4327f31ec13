import django.db.models.deletion
from django.db import migrations, models


def give_teams_groups(apps, schema_editor):
    Team = apps.get_model("accounts", "Team")
    Group = apps.get_model("auth", "Group")
    for team in Team.objects.all():
        team.group = Group.objects.create(name=f"team:{team.name}")
        team.save(update_fields=["group"])
        team.group.user_set.set(team.members.all())


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AddField(
            model_name="team",
            name="group",
            field=models.OneToOneField(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.DB_CASCADE,
                related_name="team",
                to="auth.group",
            ),
        ),
        migrations.RunPython(give_teams_groups, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="team",
            name="group",
            field=models.OneToOneField(
                editable=False,
                on_delete=django.db.models.deletion.DB_CASCADE,
                related_name="team",
                to="auth.group",
            ),
        ),
        migrations.RemoveField(model_name="user", name="teams"),
    ]
