-- Register an application role and grant it its privileges (migration 0006 explains them).
SELECT ilji.add_app_role(%(role)s, %(read_models)s)
